// FarmMeasurer: a Measurer whose candidates are measured by the remote
// workers of one device key, through the DeviceFarm.
//
// submit() queues a batch and returns at once; each result is passed to the
// batch's callback as it arrives (on the farm's thread that received it), so
// the tuning engine keeps many batches in flight. cancel() withdraws every
// candidate without a result; each is answered kCancelled (never measured).
// measure() and measure_each() block until every input has its result; when
// stop() turns true, they withdraw the rest, which come back kCancelled.
// parallel_slots() is the items the device key's live workers lease at a
// time. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "measure/measure.h"
#include "workers/device_farm.h"

namespace ktune {

class FarmMeasurer : public Measurer {
 public:
  FarmMeasurer(DeviceFarm& farm, std::string job, std::string device_key, std::function<bool()> stop = {});
  ~FarmMeasurer() override;  // withdraws what is still pending, calling nothing
  FarmMeasurer(const FarmMeasurer&) = delete;
  FarmMeasurer& operator=(const FarmMeasurer&) = delete;

  std::vector<MeasureResult> measure(const std::vector<MeasureInput>& inputs, const MeasureOptions& options) override;
  std::vector<MeasureResult> measure_each(const std::vector<MeasureInput>& inputs, const MeasureOptions& options,
                                          const std::function<void(size_t, const MeasureResult&)>& on_result) override;
  void submit(const std::vector<MeasureInput>& inputs, const MeasureOptions& options,
              std::function<void(size_t, const MeasureResult&)> on_result) override;
  void cancel() override;
  int parallel_slots() const override;

 private:
  // Items submitted and not answered yet, shared with the farm's callbacks
  // (which may run after this object is gone: they then find nothing).
  struct Pending {
    std::mutex mu;
    struct Item {
      std::shared_ptr<std::function<void(size_t, const MeasureResult&)>> on_result;
      size_t index = 0;
      std::string item_id;  // the farm's, once submit() has it
    };
    std::map<uint64_t, Item> items;  // by token
    uint64_t next_token = 0;
  };
  std::vector<Pending::Item> take_all();

  DeviceFarm& farm_;
  std::string job_;
  std::string device_key_;
  std::function<bool()> stop_;
  std::shared_ptr<Pending> pending_;
};

}  // namespace ktune
