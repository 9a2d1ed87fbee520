#include "db/stored_device.h"

#include "schedule_space/error.h"

namespace ktune {

std::optional<DeviceDescription> stored_device(const Database& db, const std::string& device_key) {
  std::optional<std::string> text = db.device(device_key);
  if (!text) return std::nullopt;
  try {
    return DeviceDescription::parse(*text);
  } catch (const Error& e) {
    throw Error("tuning database " + db.path() + ": the description of device key " + device_key + " is unreadable: " +
                e.what());
  }
}

bool store_device(Database& db, const DeviceDescription& d) {
  const std::string key = d.target.device_key();
  const std::string text = d.to_json_text();
  if (db.device(key) == text) return false;
  db.set_device(key, text);
  return true;
}

}  // namespace ktune
