#include "frontend/onnx_frontend.h"

#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <numeric>
#include <set>
#include <sstream>

#include "schedule_space/error.h"

namespace ktune {

namespace {

using Shape = std::vector<int64_t>;  // -1: unknown dimension

std::string shape_text(const Shape& s) {
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "x" : "") + (s[i] < 0 ? std::string("?") : std::to_string(s[i]));
  return t.empty() ? "scalar" : t;
}

const onnx::AttributeProto* attribute(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}
int64_t attr_int(const onnx::NodeProto& n, const std::string& name, int64_t fallback) {
  const auto* a = attribute(n, name);
  return a ? a->i() : fallback;
}
double attr_float(const onnx::NodeProto& n, const std::string& name, double fallback) {
  const auto* a = attribute(n, name);
  return a ? a->f() : fallback;
}
std::string attr_string(const onnx::NodeProto& n, const std::string& name, const std::string& fallback) {
  const auto* a = attribute(n, name);
  return a ? a->s() : fallback;
}
std::vector<int64_t> attr_ints(const onnx::NodeProto& n, const std::string& name) {
  const auto* a = attribute(n, name);
  return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : std::vector<int64_t>{};
}

Shape shape_of(const onnx::TypeProto& t) {
  Shape s;
  if (!t.has_tensor_type() || !t.tensor_type().has_shape()) return s;
  for (const auto& d : t.tensor_type().shape().dim()) s.push_back(d.has_dim_value() && d.dim_value() > 0 ? d.dim_value() : -1);
  return s;
}

bool known(const Shape& s) {
  return std::all_of(s.begin(), s.end(), [](int64_t d) { return d > 0; });
}

// What the graph knows about a value: its shape and element type.
struct ValueInfo {
  Shape shape;
  bool has_shape = false;
  int elem_type = 0;  // onnx::TensorProto::DataType; 0 unknown
};

class Mapper {
 public:
  Mapper(const onnx::GraphProto& g, ModelTasks& out) : out_(out) {
    auto add = [&](const onnx::ValueInfoProto& v) {
      ValueInfo info;
      info.has_shape = v.type().has_tensor_type() && v.type().tensor_type().has_shape();
      info.shape = shape_of(v.type());
      info.elem_type = v.type().has_tensor_type() ? v.type().tensor_type().elem_type() : 0;
      values_[v.name()] = info;
    };
    for (const auto& v : g.input()) add(v);
    for (const auto& v : g.value_info()) add(v);
    for (const auto& v : g.output()) add(v);
    for (const auto& t : g.initializer()) {
      ValueInfo info;
      info.has_shape = true;
      info.shape.assign(t.dims().begin(), t.dims().end());
      info.elem_type = t.data_type();
      values_[t.name()] = info;
    }
  }

  void node(const onnx::NodeProto& n, int index) {
    ++out_.total_nodes;
    const std::string& op = n.op_type();
    const bool ours = n.domain().empty() || n.domain() == "ai.onnx";
    if (!ours || (op != "Conv" && op != "MatMul" && op != "Gemm")) {
      not_tunable(ours ? op : n.domain() + "." + op);
      return;
    }
    NodeMapping m;
    m.node = n.name().empty() ? "#" + std::to_string(index) + " " + op : n.name();
    m.op_type = op;
    if (op == "Conv") {
      if (!conv(n, m)) return;
    } else if (op == "MatMul") {
      if (!matmul(n, m)) return;
    } else if (!gemm(n, m)) {
      return;
    }
    const std::string key = m.workload.key();
    auto it = task_of_.find(key);
    if (it == task_of_.end()) {
      it = task_of_.emplace(key, out_.tasks.size()).first;
      out_.tasks.push_back(ModelTask{m.workload, 0, {}});
    }
    ModelTask& t = out_.tasks[it->second];
    ++t.weight;
    t.nodes.push_back(m.node);
    out_.nodes.push_back(std::move(m));
  }

 private:
  void not_tunable(const std::string& what) {
    for (NotTunable& t : out_.not_tunable) {
      if (t.what == what) {
        ++t.count;
        return;
      }
    }
    out_.not_tunable.push_back({what, 1});
  }

  // The input's shape; throws naming the node if it is unknown.
  Shape input_shape(const onnx::NodeProto& n, int i, const std::string& node_name) {
    const std::string& name = n.input(i);
    auto it = values_.find(name);
    if (it == values_.end() || !it->second.has_shape || !known(it->second.shape)) {
      throw Error("node '" + node_name + "' (" + n.op_type() + "): the shape of its input '" + name + "' is " +
                  (it == values_.end() || !it->second.has_shape ? "unknown" : shape_text(it->second.shape)) +
                  " after shape inference (give --input-shape for the model's inputs, or export the model with "
                  "static shapes)");
    }
    return it->second.shape;
  }
  bool is_float(const std::string& name) {
    auto it = values_.find(name);
    return it == values_.end() || it->second.elem_type == 0 || it->second.elem_type == onnx::TensorProto::FLOAT;
  }
  bool present(const onnx::NodeProto& n, int i) { return n.input_size() > i && !n.input(i).empty(); }

  bool conv(const onnx::NodeProto& n, NodeMapping& m) {
    if (n.input_size() < 2) throw Error("node '" + m.node + "' (Conv) has " + std::to_string(n.input_size()) + " inputs, needs 2 or 3");
    if (!is_float(n.input(0))) return not_tunable("Conv (not float32)"), false;
    const Shape x = input_shape(n, 0, m.node), w = input_shape(n, 1, m.node);
    if (x.size() != 4 || w.size() != 4) {
      not_tunable("Conv (" + std::to_string(x.size() >= 2 ? x.size() - 2 : 0) + "-D)");
      return false;
    }
    const int64_t group = attr_int(n, "group", 1);
    Conv2dShape s;
    s.n = x[0], s.c = x[1], s.h = x[2], s.w = x[3];
    s.k = w[0], s.r = w[2], s.s = w[3];
    std::vector<int64_t> ks = attr_ints(n, "kernel_shape");
    if (!ks.empty() && (ks.size() != 2 || ks[0] != s.r || ks[1] != s.s)) {
      throw Error("node '" + m.node + "' (Conv): kernel_shape does not match the weight's " + shape_text(w));
    }
    std::vector<int64_t> strides = attr_ints(n, "strides"), dil = attr_ints(n, "dilations"), pads = attr_ints(n, "pads");
    if (!strides.empty()) {
      if (strides.size() != 2) throw Error("node '" + m.node + "' (Conv): strides must have 2 values");
      s.stride_h = strides[0], s.stride_w = strides[1];
    }
    if (!dil.empty()) {
      if (dil.size() != 2) throw Error("node '" + m.node + "' (Conv): dilations must have 2 values");
      s.dilation_h = dil[0], s.dilation_w = dil[1];
    }
    const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
    if (auto_pad == "NOTSET") {
      if (!pads.empty()) {
        if (pads.size() != 4) throw Error("node '" + m.node + "' (Conv): pads must have 4 values");
        s.pad_top = pads[0], s.pad_left = pads[1], s.pad_bottom = pads[2], s.pad_right = pads[3];
      }
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      auto same = [&](int64_t in, int64_t k, int64_t stride, int64_t d, int64_t& begin, int64_t& end) {
        const int64_t out = (in + stride - 1) / stride;
        const int64_t total = std::max<int64_t>(0, (out - 1) * stride + (k - 1) * d + 1 - in);
        const int64_t small = total / 2, large = total - small;
        begin = auto_pad == "SAME_UPPER" ? small : large;
        end = auto_pad == "SAME_UPPER" ? large : small;
      };
      same(s.h, s.r, s.stride_h, s.dilation_h, s.pad_top, s.pad_bottom);
      same(s.w, s.s, s.stride_w, s.dilation_w, s.pad_left, s.pad_right);
    } else if (auto_pad != "VALID") {
      throw Error("node '" + m.node + "' (Conv): unknown auto_pad '" + auto_pad + "'");
    }
    bool depthwise = false;
    if (group == 1) {
      if (w[1] != s.c) throw Error("node '" + m.node + "' (Conv): weight " + shape_text(w) + " does not fit input " + shape_text(x));
    } else if (group == s.c && w[1] == 1 && s.k % s.c == 0) {
      depthwise = true;
      s.multiplier = s.k / s.c;
    } else {
      not_tunable("Conv (group=" + std::to_string(group) + ")");
      return false;
    }
    m.has_c = present(n, 2);
    if (m.has_c) m.c_shape = input_shape(n, 2, m.node);
    return make(m, [&] { return Workload(s, depthwise); });
  }

  bool matmul(const onnx::NodeProto& n, NodeMapping& m) {
    if (n.input_size() != 2) throw Error("node '" + m.node + "' (MatMul) has " + std::to_string(n.input_size()) + " inputs, needs 2");
    if (!is_float(n.input(0)) || !is_float(n.input(1))) return not_tunable("MatMul (not float32)"), false;
    Shape a = input_shape(n, 0, m.node), b = input_shape(n, 1, m.node);
    m.a_shape = a, m.b_shape = b;
    if (a.empty() || b.empty()) {
      throw Error("node '" + m.node + "' (MatMul): inputs must have at least 1 dimension, got " + shape_text(a) + " x " + shape_text(b));
    }
    if (a.size() == 1) a.insert(a.begin(), 1);  // [K] -> [1,K]
    if (b.size() == 1) b.push_back(1);          // [K] -> [K,1]
    const int64_t M = a[a.size() - 2], K = a.back(), N = b.back();
    if (b[b.size() - 2] != K) {
      throw Error("node '" + m.node + "' (MatMul): inner dimensions differ: " + shape_text(m.a_shape) + " x " + shape_text(m.b_shape));
    }
    if (b.size() == 2) {
      const int64_t rows = std::accumulate(a.begin(), a.end() - 1, int64_t{1}, std::multiplies<>());
      return make(m, [&] { return Workload(MatmulShape{rows, N, K}); });
    }
    // Both batched: broadcast the batch dimensions (numpy rules).
    Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
    while (ba.size() < bb.size()) ba.insert(ba.begin(), 1);
    while (bb.size() < ba.size()) bb.insert(bb.begin(), 1);
    int64_t batch = 1;
    for (size_t i = 0; i < ba.size(); ++i) {
      if (ba[i] != bb[i] && ba[i] != 1 && bb[i] != 1) {
        throw Error("node '" + m.node + "' (MatMul): batch dimensions do not broadcast: " + shape_text(m.a_shape) + " x " +
                    shape_text(m.b_shape));
      }
      batch *= std::max(ba[i], bb[i]);
    }
    return make(m, [&] { return Workload(BatchMatmulShape{batch, M, N, K}); });
  }

  bool gemm(const onnx::NodeProto& n, NodeMapping& m) {
    if (n.input_size() < 2) throw Error("node '" + m.node + "' (Gemm) has " + std::to_string(n.input_size()) + " inputs, needs 2 or 3");
    if (!is_float(n.input(0)) || !is_float(n.input(1))) return not_tunable("Gemm (not float32)"), false;
    const Shape a = input_shape(n, 0, m.node), b = input_shape(n, 1, m.node);
    if (a.size() != 2 || b.size() != 2) throw Error("node '" + m.node + "' (Gemm): A and B must be 2-D, got " + shape_text(a) + " and " + shape_text(b));
    m.transpose_a = attr_int(n, "transA", 0) != 0;
    m.b_is_nk = attr_int(n, "transB", 0) != 0;
    m.alpha = attr_float(n, "alpha", 1.0);
    m.beta = attr_float(n, "beta", 1.0);
    const int64_t M = m.transpose_a ? a[1] : a[0], K = m.transpose_a ? a[0] : a[1];
    const int64_t N = m.b_is_nk ? b[0] : b[1];
    if ((m.b_is_nk ? b[1] : b[0]) != K) {
      throw Error("node '" + m.node + "' (Gemm): inner dimensions differ: A " + shape_text(a) + ", B " + shape_text(b));
    }
    m.has_c = present(n, 2);
    if (m.has_c) m.c_shape = input_shape(n, 2, m.node);
    const bool vector_c = m.has_c && ((m.c_shape.size() == 1 && m.c_shape[0] == N) ||
                                      (m.c_shape.size() == 2 && m.c_shape[0] == 1 && m.c_shape[1] == N));
    if (m.b_is_nk && m.alpha == 1.0 && (!m.has_c || (vector_c && m.beta == 1.0))) {
      m.bias_in_kernel = m.has_c;
      return make(m, [&] { return Workload(DenseShape{M, K, N, m.has_c}); });
    }
    return make(m, [&] { return Workload(MatmulShape{M, N, K}); });
  }

  // Builds and validates the workload; a shape ktune refuses is listed.
  template <typename F>
  bool make(NodeMapping& m, F&& build) {
    try {
      m.workload = build();
      m.workload.validate();
      return true;
    } catch (const Error& e) {
      not_tunable(m.op_type + " (" + e.what() + ")");
      return false;
    }
  }

  ModelTasks& out_;
  std::map<std::string, ValueInfo> values_;
  std::map<std::string, size_t> task_of_;
};

}  // namespace

int64_t max_supported_opset() {
  const auto& ranges = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto it = ranges.find("");
  return it == ranges.end() ? 0 : it->second.second;
}

std::pair<std::string, std::vector<int64_t>> parse_input_shape(const std::string& text) {
  const auto eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    throw Error("--input-shape '" + text + "': expected NAME=D1xD2x..., e.g. input=1x3x224x224");
  }
  std::vector<int64_t> dims;
  std::stringstream in(text.substr(eq + 1));
  std::string part;
  while (std::getline(in, part, 'x')) {
    size_t used = 0;
    int64_t d = 0;
    try {
      d = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || part.empty() || d <= 0) {
      throw Error("--input-shape '" + text + "': dimension '" + part + "' is not a positive integer");
    }
    dims.push_back(d);
  }
  return {text.substr(0, eq), dims};
}

namespace {

// ONNX's shape inference trusts the model it is given: some malformed models
// make it read out of bounds (libonnx 1.12: a Conv without kernel_shape
// whose weight has more dimensions than its input dies of SIGSEGV in
// convPoolShapeInference). It runs in a child process, as a candidate kernel
// runs in ktune-runner, so such a model is an error naming it, not a crash.
void infer_shapes(onnx::ModelProto& model, const std::string& what) {
  int fds[2];
  if (pipe(fds) != 0) throw Error("cannot run ONNX shape inference: pipe: " + std::string(std::strerror(errno)));
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    close(fds[0]);
    close(fds[1]);
    throw Error("cannot run ONNX shape inference: fork: " + std::string(std::strerror(e)));
  }
  if (pid == 0) {
    close(fds[0]);
    // Die of the signal whoever installed a handler (a sanitizer, a fuzzer):
    // the parent reports it.
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(sig, SIG_DFL);
    std::string reply;
    try {
      onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(),
                                         onnx::ShapeInferenceOptions(false, 0, true));
      reply = "+" + model.SerializeAsString();
    } catch (const std::exception& e) {
      reply = std::string("-") + e.what();
    }
    for (size_t done = 0; done < reply.size();) {
      const ssize_t n = write(fds[1], reply.data() + done, reply.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) _exit(1);
      done += static_cast<size_t>(n);
    }
    _exit(0);  // no exit handlers: they belong to the parent
  }
  close(fds[1]);
  std::string reply;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || reply.empty()) {
    const std::string how = WIFSIGNALED(status) ? std::string("signal ") + strsignal(WTERMSIG(status))
                                                : "exit status " + std::to_string(WEXITSTATUS(status));
    throw Error(what + ": ONNX shape inference crashed on it (" + how + "): the model is malformed");
  }
  if (reply[0] == '-') throw Error(what + ": ONNX shape inference failed: " + reply.substr(1));
  if (!model.ParseFromString(reply.substr(1))) throw Error(what + ": ONNX shape inference returned no model");
}

}  // namespace

ModelTasks onnx_tasks_from_bytes(const std::string& bytes, const std::string& what,
                                 const std::map<std::string, std::vector<int64_t>>& input_shapes) {
  onnx::ModelProto model;
  if (bytes.empty()) throw Error(what + " is empty, not an ONNX model");
  if (!model.ParseFromString(bytes)) {
    throw Error(what + " is not an ONNX model (or is truncated): it does not parse as an ONNX ModelProto");
  }
  if (!model.has_graph() || model.graph().node_size() == 0) {
    throw Error(what + " is not an ONNX model with a graph (no nodes); is it truncated or another protobuf file?");
  }
  ModelTasks out;
  out.path = what;
  out.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") out.opset = o.version();
  }
  if (out.opset <= 0) throw Error(what + " imports no opset of the default ONNX domain");
  const int64_t newest = max_supported_opset();
  if (out.opset > newest) {
    throw Error(what + " uses ONNX opset " + std::to_string(out.opset) + "; this build's ONNX library reads opsets up to " +
                std::to_string(newest) + " (re-export the model with opset <= " + std::to_string(newest) + ")");
  }
  onnx::GraphProto* g = model.mutable_graph();
  std::set<std::string> initializers;
  for (const auto& t : g->initializer()) initializers.insert(t.name());
  // Overrides, then every real input must have a static shape.
  std::set<std::string> used;
  for (auto& input : *g->mutable_input()) {
    if (initializers.count(input.name())) continue;
    auto it = input_shapes.find(input.name());
    if (it != input_shapes.end()) {
      used.insert(it->first);
      auto* shape = input.mutable_type()->mutable_tensor_type()->mutable_shape();
      shape->clear_dim();
      for (int64_t d : it->second) shape->add_dim()->set_dim_value(d);
    }
  }
  std::string names;
  for (const auto& input : g->input()) {
    if (initializers.count(input.name())) continue;
    names += (names.empty() ? "" : ", ") + input.name();
  }
  for (const auto& [name, dims] : input_shapes) {
    if (!used.count(name)) throw Error("--input-shape " + name + ": the model has no input '" + name + "' (its inputs: " + names + ")");
  }
  for (const auto& input : g->input()) {
    if (initializers.count(input.name())) continue;
    if (!input.type().has_tensor_type() || !input.type().tensor_type().has_shape()) {
      throw Error(what + ": input '" + input.name() + "' has no shape: give --input-shape " + input.name() + "=D1xD2x...");
    }
    const auto& dims = input.type().tensor_type().shape().dim();
    for (int i = 0; i < dims.size(); ++i) {
      if (!dims[i].has_dim_value() || dims[i].dim_value() <= 0) {
        const std::string sym = dims[i].has_dim_param() ? "symbolic dimension '" + dims[i].dim_param() + "'" : "unknown dimension";
        throw Error(what + ": input '" + input.name() + "' has a " + sym + " (dimension " + std::to_string(i) + " of " +
                    std::to_string(dims.size()) + "): give --input-shape " + input.name() + "=D1xD2x...");
      }
    }
  }
  infer_shapes(model, what);
  Mapper mapper(model.graph(), out);
  for (int i = 0; i < model.graph().node_size(); ++i) mapper.node(model.graph().node(i), i);
  return out;
}

ModelTasks load_onnx_tasks(const std::string& path, const std::map<std::string, std::vector<int64_t>>& input_shapes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read model file " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return onnx_tasks_from_bytes(buf.str(), path, input_shapes);
}

}  // namespace ktune
