// `ktune space`: show an operator's schedule space, and optionally one config
// of it with its loop nest and generated code.
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/common.h"
#include "cuda/cuda_driver.h"
#include "schedule_space/codegen_cuda.h"
#include "schedule_space/codegen_cpp.h"
#include "schedule_space/config_resolver.h"
#include "schedule_space/error.h"

namespace ktune::cli {

namespace {

struct SpaceArgs {
  std::string op;
  std::string template_name;
  int threads = 0;
  std::string target = "cpu";
  std::string format = "text";
  std::string config;  // an index, or a config's text as `ktune space` prints it
  bool show_code = false;
};

int run_space(const SpaceArgs& args) {
  check_format(args.format);
  Workload w = Workload::parse(args.op);
  // A GPU's space needs no GPU: cuda:N asks the device, sm_80 / sm_90 use typical limits.
  Target target = args.target == "cpu"                 ? detect_cpu_target(args.threads)
                  : args.target.rfind("cuda:", 0) == 0 ? cuda_target(args.target)
                                                       : cuda_target_for_arch(args.target);
  const Template& tmpl = choose_template(w, args.template_name, target.kind);
  auto code = [&](const ir::Program& program) {
    if (target.kind != TargetKind::kCuda) return emit_cpp(program);
    const CudaKernel k = emit_cuda(program);
    return "// launch: grid (" + std::to_string(k.grid[0]) + ", " + std::to_string(k.grid[1]) + ", " +
           std::to_string(k.grid[2]) + "), block (" + std::to_string(k.block[0]) + ", " + std::to_string(k.block[1]) +
           ", " + std::to_string(k.block[2]) + "), " + std::to_string(k.shared_bytes) + " bytes shared\n" + k.source;
  };
  ConfigSpace space = tmpl.space(w, target);

  std::optional<Config> config;
  std::optional<std::string> invalid_reason;
  if (!args.config.empty()) {
    // An index, or a config's text.
    const bool index = args.config.find_first_not_of("0123456789") == std::string::npos;
    if (index && args.config.size() > 19) throw Error("config index " + args.config + " is outside the space");
    config = index ? config_at(space, std::stoull(args.config)) : space.parse(args.config);
    invalid_reason = tmpl.check(w, target, space, *config);
  }

  if (args.format == "json") {
    nlohmann::json j;
    j["workload"] = w.key();
    j["flops"] = w.flops();
    j["template"] = tmpl.name();
    j["template_version"] = tmpl.version();
    j["device_key"] = target.device_key();
    j["size"] = space.size();
    nlohmann::json knobs = nlohmann::json::array();
    for (size_t i = 0; i < space.num_knobs(); ++i) {
      const Knob& k = space.knob(i);
      static const char* kinds[] = {"split", "reorder", "choice"};
      knobs.push_back({{"name", k.name()}, {"kind", kinds[static_cast<int>(k.kind())]}, {"choices", k.size()}});
    }
    j["knobs"] = knobs;
    if (config) {
      j["config"] = {{"index", config->index},
                     {"text", space.describe(*config)},
                     {"valid", !invalid_reason.has_value()},
                     {"invalid_reason", invalid_reason.value_or("")}};
      if (args.show_code && !invalid_reason) {
        j["config"]["code"] = code(tmpl.instantiate(w, target, space, *config));
      }
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }

  std::cout << w.key() << "  (" << w.flops() / 1e9 << " GFLOP)\n"
            << "template " << tmpl.name() << " v" << tmpl.version() << " on " << target.device_key() << "\n";
  for (size_t i = 0; i < space.num_knobs(); ++i) {
    const Knob& k = space.knob(i);
    std::cout << "  " << k.name() << ": " << k.size() << " choices (e.g. " << k.describe(0);
    if (k.size() > 1) std::cout << ", " << k.describe(k.size() - 1);
    std::cout << ")\n";
  }
  std::cout << "total: " << space.size() << " configs\n";
  if (config) {
    std::cout << "config #" << config->index << ": " << space.describe(*config) << "\n";
    if (invalid_reason) {
      std::cout << "  invalid: " << *invalid_reason << "\n";
    } else {
      ir::Program program = tmpl.instantiate(w, target, space, *config);
      std::cout << ir::to_string(program);
      if (args.show_code) std::cout << code(program);
    }
  }
  return kExitOk;
}

}  // namespace

CommandRun add_space_command(CLI::App& app) {
  auto args = std::make_shared<SpaceArgs>();
  CLI::App* cmd = app.add_subcommand("space", "show an operator's schedule space: knobs, choices, size");
  cmd->add_option("--op", args->op, "operator spec, e.g. 'conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,pad=1)'")
      ->required();
  cmd->add_option("--template", args->template_name, "schedule template (default: the operator's first)");
  add_threads_option(cmd, args->threads, "threads for generated kernels (default: all cores)");
  cmd->add_option("--target", args->target, "cpu, cuda:N, or a GPU arch without a GPU: sm_80, sm_90")
      ->capture_default_str();
  cmd->add_option("--config", args->config,
                  "also show this config (its index, or its text as printed, e.g. 'tile_m=[4,128] mr=6 ...'): its loop nest");
  cmd->add_flag("--code", args->show_code, "with --config: print the generated C++ too");
  cmd->add_option("--format", args->format, kFormatHelp)->capture_default_str();
  return [args] { return run_space(*args); };
}

}  // namespace ktune::cli
