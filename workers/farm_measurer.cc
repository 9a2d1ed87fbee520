#include "workers/farm_measurer.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include "workers/convert.h"

namespace ktune {

FarmMeasurer::FarmMeasurer(DeviceFarm& farm, std::string job, std::string device_key, std::function<bool()> stop)
    : farm_(farm), job_(std::move(job)), device_key_(std::move(device_key)), stop_(std::move(stop)) {}

std::vector<MeasureResult> FarmMeasurer::measure(const std::vector<MeasureInput>& inputs,
                                                 const MeasureOptions& options) {
  return measure_each(inputs, options, {});
}

std::vector<MeasureResult> FarmMeasurer::measure_each(
    const std::vector<MeasureInput>& inputs, const MeasureOptions& options,
    const std::function<void(size_t, const MeasureResult&)>& on_result) {
  // Shared with the farm's callbacks, which may outlive this call's wait
  // only until withdraw() returns; a shared_ptr keeps it safe regardless.
  struct Arrivals {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::optional<MeasureResult>> results;
    std::vector<size_t> fresh;  // arrived, not yet passed to on_result
  };
  auto arrivals = std::make_shared<Arrivals>();
  arrivals->results.resize(inputs.size());
  std::vector<v1::MeasureItem> items;
  std::vector<DeviceFarm::OnResult> callbacks;
  const v1::MeasureOptions wire_options = wire::to_proto(options);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const MeasureInput& in = inputs[i];
    v1::MeasureItem item;
    item.set_workload_key(in.workload.key());
    item.set_template_name(in.tmpl->name());
    item.set_template_version(in.tmpl->version());
    item.set_config_index(in.config.index);
    *item.mutable_target() = wire::to_proto(in.target);
    *item.mutable_options() = wire_options;
    items.push_back(std::move(item));
    callbacks.push_back([arrivals, i](const MeasureResult& r) {
      {
        std::lock_guard lock(arrivals->mu);
        if (arrivals->results[i]) return;
        arrivals->results[i] = r;
        arrivals->fresh.push_back(i);
      }
      arrivals->cv.notify_all();
    });
  }
  std::vector<std::string> ids = farm_.submit(job_, device_key_, std::move(items), std::move(callbacks));

  size_t done = 0;
  bool cancelled = false;
  while (done < inputs.size()) {
    std::vector<size_t> fresh;
    {
      std::unique_lock lock(arrivals->mu);
      arrivals->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return !arrivals->fresh.empty(); });
      fresh.swap(arrivals->fresh);
    }
    for (size_t i : fresh) {
      ++done;
      if (on_result) on_result(i, *arrivals->results[i]);
    }
    if (done < inputs.size() && stop_ && stop_()) {
      cancelled = true;
      break;
    }
  }
  std::vector<MeasureResult> out(inputs.size());
  if (cancelled) {
    std::vector<std::string> pending;
    {
      std::lock_guard lock(arrivals->mu);
      for (size_t i = 0; i < ids.size(); ++i) {
        if (!arrivals->results[i]) pending.push_back(ids[i]);
      }
    }
    farm_.withdraw(pending);
    // A result may have come between the last look and the withdrawal.
    std::vector<size_t> fresh;
    {
      std::lock_guard lock(arrivals->mu);
      fresh.swap(arrivals->fresh);
    }
    for (size_t i : fresh) {
      if (on_result) on_result(i, *arrivals->results[i]);
    }
  }
  std::lock_guard lock(arrivals->mu);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (arrivals->results[i]) {
      out[i] = *arrivals->results[i];
    } else {
      out[i].error = MeasureError::kCancelled;
      out[i].error_message = "cancelled before it was measured";
    }
  }
  return out;
}

}  // namespace ktune
