#include "logging/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <optional>

#include "schedule_space/error.h"

namespace ktune::logging {

namespace {

constexpr const char* kTimeAndLevel = "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] ";

std::optional<spdlog::level::level_enum> parse_level(const std::string& name) {
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},   {"error", spdlog::level::err},   {"off", spdlog::level::off},
  };
  for (const auto& [n, level] : kLevels) {
    if (name == n) return level;
  }
  return std::nullopt;
}

void install(spdlog::level::level_enum level, const std::string& pattern) {
  auto logger = std::make_shared<spdlog::logger>("ktune", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_pattern(pattern);
  logger->set_level(level);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace

const char* const kLevelNames = "trace, debug, info, warn, error, off";

void setup(const std::string& level, const std::string& process_name) {
  std::optional<spdlog::level::level_enum> l = parse_level(level);
  if (!l) throw Error("unknown log level '" + level + "': accepted levels are " + kLevelNames);
  std::string name;  // '%' would start a pattern flag
  for (char c : process_name) name += c == '%' ? std::string("%%") : std::string(1, c);
  install(*l, std::string(kTimeAndLevel) + "[" + name + "] %v");
}

}  // namespace ktune::logging

// spdlog's own default logger writes to stdout, which is some programs'
// output (ktune-farm-bench prints its table there): point it at stderr as
// the program starts. logging/CMakeLists.txt makes the linker keep this.
extern "C" {
extern const int ktune_logging_stderr_default;
const int ktune_logging_stderr_default = [] {
  ktune::logging::install(spdlog::level::info, std::string(ktune::logging::kTimeAndLevel) + "%v");
  return 1;
}();
}
