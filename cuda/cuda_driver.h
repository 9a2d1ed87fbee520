// CUDA device discovery through the driver API, loaded at run time
// (dlopen libcuda.so.1): on a machine without a GPU or driver it reports no
// device and why, and the rest of ktune is unaffected.
#pragma once

#include <string>
#include <vector>

#include "schedule_space/target.h"

namespace ktune {

// One Target (kind kCuda) per device; empty with *why set when there is no
// driver or no device.
std::vector<Target> discover_cuda_devices(std::string* why = nullptr);

// "cuda:N" -> that device's target; throws ktune::Error naming what is there.
Target cuda_target(const std::string& device);

namespace detail {
// Device-key slug of a driver device name: "NVIDIA H100 80GB HBM3" ->
// "nvidia-h100-80gb-hbm3".
std::string gpu_name_slug(const std::string& name);
}  // namespace detail

}  // namespace ktune
