#include "schedule_space/device_description.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <limits>

#include "schedule_space/error.h"

namespace ktune {

namespace {

using Json = nlohmann::ordered_json;

// protobuf's JSON name of a field: lowerCamelCase of its proto name.
std::string camel_case(const std::string& name) {
  std::string out;
  bool upper = false;
  for (char c : name) {
    if (c == '_') {
      upper = true;
    } else {
      out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      upper = false;
    }
  }
  return out;
}

// A value in a message: short, whatever it is.
std::string shown(const Json& v) {
  std::string text = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

Error field_error(const std::string& path, const std::string& what) {
  return Error("device description: field '" + path + "': " + what);
}

// Reads the fields of one JSON object of the description, as protobuf's JSON
// parser does: a field under its proto name or its lowerCamelCase name,
// absent or null meaning its zero value. Errors name the field's path.
class Message {
 public:
  Message(const Json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) {
      if (path_.empty()) throw Error("device description: expected a JSON object, got " + shown(j_));
      throw field_error(path_, "expected an object, got " + shown(j_));
    }
  }

  // The field's value, or nullptr where it is absent or null.
  const Json* find(const std::string& name) const {
    for (const std::string& key : {name, camel_case(name)}) {
      auto it = j_.find(key);
      if (it != j_.end() && !it->is_null()) return &*it;
    }
    return nullptr;
  }
  std::string path(const std::string& name) const { return path_.empty() ? name : path_ + "." + name; }

  std::string text(const std::string& name) const {
    const Json* v = find(name);
    if (!v) return "";
    if (!v->is_string()) throw field_error(path(name), "expected a string, got " + shown(*v));
    return v->get<std::string>();
  }
  int64_t integer(const std::string& name, int64_t lowest = std::numeric_limits<int64_t>::min(),
                  int64_t highest = std::numeric_limits<int64_t>::max()) const {
    const Json* v = find(name);
    if (!v) return 0;
    int64_t n = 0;
    if (v->is_number_unsigned()) {
      if (v->get<uint64_t>() > static_cast<uint64_t>(highest)) throw field_error(path(name), shown(*v) + " is out of range");
      n = static_cast<int64_t>(v->get<uint64_t>());
    } else if (v->is_number_integer()) {
      n = v->get<int64_t>();
    } else if (v->is_number_float() && std::trunc(v->get<double>()) == v->get<double>() &&
               std::abs(v->get<double>()) < 9.0e18) {
      n = static_cast<int64_t>(v->get<double>());
    } else if (v->is_string() && is_integer_text(v->get<std::string>())) {
      try {
        n = std::stoll(v->get<std::string>());
      } catch (const std::out_of_range&) {
        throw field_error(path(name), shown(*v) + " is out of range");
      }
    } else {
      throw field_error(path(name), "expected an integer, got " + shown(*v));
    }
    if (n < lowest || n > highest) throw field_error(path(name), shown(*v) + " is out of range");
    return n;
  }
  int int32(const std::string& name) const {
    return static_cast<int>(integer(name, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
  }
  std::vector<std::string> texts(const std::string& name) const {
    const Json* v = find(name);
    if (!v) return {};
    if (!v->is_array()) throw field_error(path(name), "expected an array of strings, got " + shown(*v));
    std::vector<std::string> out;
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& item = (*v)[i];
      if (!item.is_string()) throw field_error(path(name) + "[" + std::to_string(i) + "]", "expected a string, got " + shown(item));
      out.push_back(item.get<std::string>());
    }
    return out;
  }

 private:
  static bool is_integer_text(const std::string& s) {
    size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
    if (i == s.size()) return false;
    for (; i < s.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
  }

  const Json& j_;
  std::string path_;
};

// As protobuf's JSON printer: a field at its zero value is left out, 64-bit
// integers are strings.
void put(Json& j, const char* name, const std::string& value) {
  if (!value.empty()) j[name] = value;
}
void put(Json& j, const char* name, int value) {
  if (value != 0) j[name] = value;
}
void put64(Json& j, const char* name, int64_t value) {
  if (value != 0) j[name] = std::to_string(value);
}

Json cpu_json(const CpuTarget& c) {
  Json j = Json::object();
  put(j, "model", c.model);
  put(j, "isa", c.isa);
  put(j, "vector_lanes", c.vector_lanes);
  put(j, "threads", c.threads);
  put64(j, "l1d_bytes", c.l1d_bytes);
  put64(j, "l2_bytes", c.l2_bytes);
  put64(j, "l3_bytes", c.l3_bytes);
  put(j, "compiler", c.compiler);
  if (!c.flags.empty()) j["flags"] = c.flags;
  return j;
}

Json cuda_json(const CudaTarget& g) {
  Json j = Json::object();
  put(j, "name", g.name);
  put(j, "ordinal", g.ordinal);
  put(j, "cc_major", g.cc_major);
  put(j, "cc_minor", g.cc_minor);
  put(j, "sm_count", g.sm_count);
  put(j, "max_threads_per_block", g.max_threads_per_block);
  put64(j, "shared_bytes_per_block", g.shared_bytes_per_block);
  put(j, "registers_per_block", g.registers_per_block);
  put(j, "max_registers_per_thread", g.max_registers_per_thread);
  put(j, "warp_size", g.warp_size);
  return j;
}

CpuTarget read_cpu(const Message& m) {
  CpuTarget c;
  c.model = m.text("model");
  c.isa = m.text("isa");
  c.vector_lanes = m.int32("vector_lanes");
  c.threads = m.int32("threads");
  c.l1d_bytes = m.integer("l1d_bytes");
  c.l2_bytes = m.integer("l2_bytes");
  c.l3_bytes = m.integer("l3_bytes");
  c.compiler = m.text("compiler");
  c.flags = m.texts("flags");
  return c;
}

CudaTarget read_cuda(const Message& m) {
  CudaTarget g;
  g.name = m.text("name");
  g.ordinal = m.int32("ordinal");
  g.cc_major = m.int32("cc_major");
  g.cc_minor = m.int32("cc_minor");
  g.sm_count = m.int32("sm_count");
  g.max_threads_per_block = m.int32("max_threads_per_block");
  g.shared_bytes_per_block = m.integer("shared_bytes_per_block");
  g.registers_per_block = m.int32("registers_per_block");
  g.max_registers_per_thread = m.int32("max_registers_per_thread");
  g.warp_size = m.int32("warp_size");
  return g;
}

Target read_target(const Message& d) {
  const Json* j = d.find("target");
  if (!j) throw field_error("target", "missing");
  const Message m(*j, "target");
  const std::string kind = m.text("kind");
  Target t;
  if (kind == "cpu") {
    t.kind = TargetKind::kCpu;
  } else if (kind == "cuda") {
    t.kind = TargetKind::kCuda;
  } else {
    throw field_error("target.kind", kind.empty() ? "missing (accepted: cpu, cuda)"
                                                  : "'" + kind + "' is not a target kind (accepted: cpu, cuda)");
  }
  // Written for every kind (the GPU's host CPU too); a CPU has no "cuda".
  static const Json kAbsent = Json::object();  // a message at its zero value
  const Json* cpu = m.find("cpu");
  t.cpu = read_cpu(Message(cpu ? *cpu : kAbsent, m.path("cpu")));
  if (t.kind == TargetKind::kCuda) {
    const Json* cuda = m.find("cuda");
    t.cuda = read_cuda(Message(cuda ? *cuda : kAbsent, m.path("cuda")));
  }
  try {
    check_target(t);
  } catch (const Error& e) {
    throw Error("device description: " + std::string(e.what()));
  }
  const std::string key = m.text("device_key");
  if (!key.empty() && key != t.device_key()) t.key = key;
  return t;
}

}  // namespace

nlohmann::ordered_json DeviceDescription::to_json() const {
  Json t = Json::object();
  t["kind"] = target.kind == TargetKind::kCuda ? "cuda" : "cpu";
  put(t, "device_key", target.device_key());
  t["cpu"] = cpu_json(target.cpu);
  if (target.kind == TargetKind::kCuda) t["cuda"] = cuda_json(target.cuda);
  Json j = Json::object();
  j["target"] = std::move(t);
  put(j, "host", host);
  put(j, "description", description);
  put(j, "cpu_model_name", cpu_model_name);
  put(j, "tool_version", tool_version);
  return j;
}

std::string DeviceDescription::to_json_text() const {
  return to_json().dump(-1, ' ', false, Json::error_handler_t::replace);
}

DeviceDescription DeviceDescription::from_json(const nlohmann::ordered_json& j) {
  const Message m(j, "");
  DeviceDescription d;
  d.target = read_target(m);
  d.host = m.text("host");
  d.description = m.text("description");
  d.cpu_model_name = m.text("cpu_model_name");
  d.tool_version = m.text("tool_version");
  return d;
}

DeviceDescription DeviceDescription::parse(const std::string& text) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number too large
    throw Error("device description is not JSON: " + std::string(e.what()));
  }
  return from_json(j);
}

DeviceDescription describe_this_machine(const Target& t) {
  DeviceDescription d;
  d.target = t;
  d.host = host_name();
  d.description = t.kind == TargetKind::kCpu ? t.describe() : "";
  d.cpu_model_name = cpu_model_name();
  d.tool_version = "ktune " KTUNE_VERSION;
  return d;
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

}  // namespace ktune
