// `ktune devices`: what this machine can tune on — its CPU and any CUDA
// GPUs (found through the driver, loaded at run time), with their device
// keys; and whether NVRTC is there to compile GPU kernels.
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cuda/cuda_driver.h"
#include "cuda/nvrtc.h"

namespace ktune::cli {

namespace {

int run_devices(const std::string& format) {
  check_format(format);
  const Target cpu = detect_cpu_target(0);
  std::string no_gpu, no_nvrtc;
  const std::vector<Target> gpus = discover_cuda_devices(&no_gpu);
  const Nvrtc* nvrtc = Nvrtc::get(&no_nvrtc);
  if (format == "json") {
    nlohmann::json j;
    j["cpu"] = {{"device_key", cpu.device_key()}, {"description", cpu.describe()}};
    j["cuda"] = nlohmann::json::array();
    for (const Target& g : gpus) {
      j["cuda"].push_back({{"device", "cuda:" + std::to_string(g.cuda.ordinal)}, {"device_key", g.device_key()},
                           {"description", g.describe()}});
    }
    if (gpus.empty()) j["cuda_missing"] = no_gpu;
    j["nvrtc"] = nvrtc ? nlohmann::json(nvrtc->version()) : nlohmann::json();
    if (!nvrtc) j["nvrtc_missing"] = no_nvrtc;
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "cpu     " << cpu.device_key() << "  " << cpu.describe() << "\n";
  for (const Target& g : gpus) std::cout << "cuda:" << g.cuda.ordinal << "  " << g.device_key() << "  " << g.describe() << "\n";
  if (gpus.empty()) std::cout << "no CUDA device: " << no_gpu << "\n";
  std::cout << (nvrtc ? "NVRTC " + nvrtc->version() + " (" + nvrtc->path() + ")" : "no NVRTC: " + no_nvrtc) << "\n";
  return kExitOk;
}

}  // namespace

CommandRun add_devices_command(CLI::App& app) {
  auto format = std::make_shared<std::string>("text");
  CLI::App* cmd = app.add_subcommand("devices", "list this machine's CPU and CUDA devices and their device keys");
  cmd->add_option("--format", *format, kFormatHelp)->capture_default_str();
  return [format] { return run_devices(*format); };
}

}  // namespace ktune::cli
