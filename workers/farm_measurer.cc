#include "workers/farm_measurer.h"

#include <condition_variable>
#include <optional>

#include "workers/convert.h"

namespace ktune {

namespace {

MeasureResult cancelled() {
  MeasureResult r;
  r.error = MeasureError::kCancelled;
  r.error_message = "cancelled before it was measured";
  return r;
}

}  // namespace

FarmMeasurer::FarmMeasurer(DeviceFarm& farm, std::string job, std::string device_key, std::function<bool()> stop)
    : farm_(farm),
      job_(std::move(job)),
      device_key_(std::move(device_key)),
      stop_(std::move(stop)),
      pending_(std::make_shared<Pending>()) {}

FarmMeasurer::~FarmMeasurer() {
  std::vector<std::string> ids;
  for (const Pending::Item& item : take_all()) ids.push_back(item.item_id);
  farm_.withdraw(ids);
}

int FarmMeasurer::parallel_slots() const { return std::max(1, farm_.slots(device_key_)); }

std::vector<FarmMeasurer::Pending::Item> FarmMeasurer::take_all() {
  std::vector<Pending::Item> out;
  std::lock_guard lock(pending_->mu);
  for (auto& [token, item] : pending_->items) out.push_back(std::move(item));
  pending_->items.clear();
  return out;
}

void FarmMeasurer::submit(const std::vector<MeasureInput>& inputs, const MeasureOptions& options,
                          std::function<void(size_t, const MeasureResult&)> on_result) {
  auto callback = std::make_shared<std::function<void(size_t, const MeasureResult&)>>(std::move(on_result));
  std::vector<v1::MeasureItem> items;
  std::vector<DeviceFarm::OnResult> callbacks;
  std::vector<uint64_t> tokens;
  const v1::MeasureOptions wire_options = wire::to_proto(options);
  {
    std::lock_guard lock(pending_->mu);
    for (size_t i = 0; i < inputs.size(); ++i) {
      const uint64_t token = pending_->next_token++;
      pending_->items[token] = Pending::Item{callback, i, ""};
      tokens.push_back(token);
    }
  }
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
    callbacks.push_back([pending = std::weak_ptr<Pending>(pending_), token = tokens[i]](const MeasureResult& r) {
      std::shared_ptr<Pending> p = pending.lock();
      if (!p) return;
      Pending::Item item;
      {
        std::lock_guard lock(p->mu);
        auto it = p->items.find(token);
        if (it == p->items.end()) return;  // cancelled: already answered
        item = std::move(it->second);
        p->items.erase(it);
      }
      (*item.on_result)(item.index, r);
    });
  }
  // Stopped while the farm was full: nothing queued; cancel() answers the
  // pending inputs.
  std::vector<std::string> ids = farm_.submit(job_, device_key_, std::move(items), std::move(callbacks), stop_);
  std::lock_guard lock(pending_->mu);
  for (size_t i = 0; i < ids.size() && i < tokens.size(); ++i) {
    auto it = pending_->items.find(tokens[i]);
    if (it != pending_->items.end()) it->second.item_id = ids[i];
  }
}

void FarmMeasurer::cancel() {
  std::vector<Pending::Item> items = take_all();
  std::vector<std::string> ids;
  for (const Pending::Item& item : items) {
    if (!item.item_id.empty()) ids.push_back(item.item_id);
  }
  farm_.withdraw(ids);
  for (const Pending::Item& item : items) (*item.on_result)(item.index, cancelled());
}

std::vector<MeasureResult> FarmMeasurer::measure(const std::vector<MeasureInput>& inputs,
                                                 const MeasureOptions& options) {
  return measure_each(inputs, options, {});
}

std::vector<MeasureResult> FarmMeasurer::measure_each(
    const std::vector<MeasureInput>& inputs, const MeasureOptions& options,
    const std::function<void(size_t, const MeasureResult&)>& on_result) {
  struct Arrivals {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::optional<MeasureResult>> results;
    std::vector<size_t> fresh;  // arrived, not yet passed to on_result
  };
  auto arrivals = std::make_shared<Arrivals>();
  arrivals->results.resize(inputs.size());
  submit(inputs, options, [arrivals](size_t i, const MeasureResult& r) {
    {
      std::lock_guard lock(arrivals->mu);
      if (arrivals->results[i]) return;
      arrivals->results[i] = r;
      arrivals->fresh.push_back(i);
    }
    arrivals->cv.notify_all();
  });
  size_t done = 0;
  bool stopped = false;
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
    if (!stopped && done < inputs.size() && stop_ && stop_()) {
      stopped = true;
      cancel();  // the rest come back kCancelled
    }
  }
  std::vector<MeasureResult> out(inputs.size());
  std::lock_guard lock(arrivals->mu);
  for (size_t i = 0; i < inputs.size(); ++i) out[i] = arrivals->results[i] ? *arrivals->results[i] : cancelled();
  return out;
}

}  // namespace ktune
