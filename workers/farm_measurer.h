// FarmMeasurer: a Measurer whose candidates are measured by the remote
// workers of one device key, through the DeviceFarm. It blocks until every
// input has its result, streaming each to measure_each's callback on the
// calling thread as it arrives; when stop() turns true, the inputs without a
// result are withdrawn and come back as kCancelled (never measured).
#pragma once

#include <functional>
#include <string>

#include "measure/measure.h"
#include "workers/device_farm.h"

namespace ktune {

class FarmMeasurer : public Measurer {
 public:
  FarmMeasurer(DeviceFarm& farm, std::string job, std::string device_key, std::function<bool()> stop = {});
  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs, const MeasureOptions& options) override;
  std::vector<MeasureResult> measure_each(const std::vector<MeasureInput>& inputs, const MeasureOptions& options,
                                          const std::function<void(size_t, const MeasureResult&)>& on_result) override;

 private:
  DeviceFarm& farm_;
  std::string job_;
  std::string device_key_;
  std::function<bool()> stop_;
};

}  // namespace ktune
