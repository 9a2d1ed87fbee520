// Device descriptions kept in the tuning database (Database::set_device and
// device store DeviceDescription::to_json_text()), read and written as the
// core type.
#pragma once

#include <optional>
#include <string>

#include "db/database.h"
#include "schedule_space/device_description.h"

namespace ktune {

// The description stored for device_key, or nullopt if there is none (a
// database older than descriptions). Throws ktune::Error naming the database,
// the device key and the problem if the stored text is not a description.
std::optional<DeviceDescription> stored_device(const Database& db, const std::string& device_key);

// Stores d under its device key, unless the database holds exactly that
// text already; returns whether it wrote. What `ktune tune` calls for the
// device it measures on.
bool store_device(Database& db, const DeviceDescription& d);

}  // namespace ktune
