#include "schedule_space/workload.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <map>
#include <optional>

#include "schedule_space/error.h"

namespace ktune {

namespace {

// Any single dimension above this would make some tensor absurd anyway;
// bounding each field first keeps the shape arithmetic below free of overflow.
constexpr int64_t kMaxField = int64_t{1} << 31;
constexpr int64_t kMaxTensorElements = int64_t{1} << 31;
constexpr int64_t kMaxTotalBytes = int64_t{4} << 30;

constexpr OpKind kAllOps[] = {OpKind::kMatmul, OpKind::kDense, OpKind::kBatchMatmul,
                              OpKind::kConv2d, OpKind::kDepthwiseConv2d};

// The fields a spec of each operator accepts, in canonical key order.
std::vector<std::string_view> accepted_fields(OpKind op) {
  switch (op) {
    case OpKind::kMatmul: return {"m", "n", "k"};
    case OpKind::kDense: return {"batch", "in", "out", "bias"};
    case OpKind::kBatchMatmul: return {"b", "m", "n", "k"};
    case OpKind::kConv2d:
      return {"n", "c", "h", "w", "k", "r", "s", "stride", "pad", "dilation"};
    case OpKind::kDepthwiseConv2d:
      return {"n", "c", "h", "w", "r", "s", "stride", "pad", "dilation", "multiplier"};
  }
  return {};
}

bool is_optional_field(std::string_view field) {
  return field == "bias" || field == "stride" || field == "pad" || field == "dilation" ||
         field == "multiplier";
}

std::string join(const std::vector<std::string_view>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += items[i];
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t at = s.find(separator);
    parts.push_back(trim(s.substr(0, at)));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

// The fields of one spec, as written, with what it takes to explain an error.
class SpecFields {
 public:
  SpecFields(std::string_view spec, OpKind op) : spec_(spec), op_(op) {}

  void add(std::string_view field, std::string_view value) {
    auto accepted = accepted_fields(op_);
    if (std::find(accepted.begin(), accepted.end(), field) == accepted.end()) {
      fail(field.empty() ? "empty field name" : "unknown field '" + std::string(field) + "'");
    }
    if (!values_.emplace(field, value).second) {
      fail("field '" + std::string(field) + "' is given twice");
    }
  }

  void check_required() const {
    for (std::string_view field : accepted_fields(op_)) {
      if (!is_optional_field(field) && !values_.count(field)) {
        fail("missing required field '" + std::string(field) + "'");
      }
    }
  }

  int64_t integer(std::string_view field, int64_t fallback) const {
    auto it = values_.find(field);
    return it == values_.end() ? fallback : parse_integer(field, it->second);
  }

  // A per-dimension value "AxB..." with one of the allowed part counts; the
  // parts are returned as written, absent -> nullopt.
  std::optional<std::vector<int64_t>> dims(std::string_view field,
                                           std::initializer_list<size_t> allowed,
                                           std::string_view form) const {
    auto it = values_.find(field);
    if (it == values_.end()) return std::nullopt;
    std::vector<std::string_view> parts = split(it->second, 'x');
    if (std::find(allowed.begin(), allowed.end(), parts.size()) == allowed.end()) {
      fail("field '" + std::string(field) + "' = '" + std::string(it->second) +
           "' has the wrong form; accepted: " + std::string(form));
    }
    std::vector<int64_t> out;
    for (std::string_view part : parts) out.push_back(parse_integer(field, part));
    return out;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw Error("workload '" + std::string(spec_) + "': " + problem + "; " +
                std::string(op_name(op_)) + " accepts fields: " + join(accepted_fields(op_)));
  }

 private:
  int64_t parse_integer(std::string_view field, std::string_view text) const {
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
      fail("field '" + std::string(field) + "' = '" + std::string(text) +
           "' is not an integer");
    }
    return value;
  }

  std::string_view spec_;
  OpKind op_;
  std::map<std::string_view, std::string_view, std::less<>> values_;
};

// Shortest form of a (height, width) pair: "2" when equal, else "2x1".
std::string per_dim(int64_t h, int64_t w) {
  return h == w ? std::to_string(h) : std::to_string(h) + "x" + std::to_string(w);
}

std::string pad_text(const Conv2dShape& s) {
  if (s.pad_top == s.pad_bottom && s.pad_left == s.pad_right) {
    return per_dim(s.pad_top, s.pad_left);
  }
  return std::to_string(s.pad_top) + "x" + std::to_string(s.pad_left) + "x" +
         std::to_string(s.pad_bottom) + "x" + std::to_string(s.pad_right);
}

// Product of dims, saturating at INT64_MAX so absurd shapes compare as huge
// instead of wrapping around.
int64_t saturating_product(const std::vector<int64_t>& dims) {
  int64_t product = 1;
  for (int64_t d : dims) {
    if (d <= 0) return 0;
    if (__builtin_mul_overflow(product, d, &product)) return std::numeric_limits<int64_t>::max();
  }
  return product;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace

std::string_view op_name(OpKind op) {
  switch (op) {
    case OpKind::kMatmul: return "matmul";
    case OpKind::kDense: return "dense";
    case OpKind::kBatchMatmul: return "batch_matmul";
    case OpKind::kConv2d: return "conv2d";
    case OpKind::kDepthwiseConv2d: return "depthwise_conv2d";
  }
  return "unknown";
}

int64_t TensorSpec::elements() const { return saturating_product(shape); }

Workload::Workload(Conv2dShape s, bool depthwise)
    : op_(depthwise ? OpKind::kDepthwiseConv2d : OpKind::kConv2d), shape_(s) {
  if (depthwise) {
    // Saturates instead of overflowing; validate() then rejects the shape.
    auto& shape = std::get<Conv2dShape>(shape_);
    shape.k = saturating_product({shape.c, shape.multiplier});
  }
}

Workload Workload::parse(std::string_view spec) {
  const std::string_view text = trim(spec);
  const size_t open = text.find('(');
  if (open == std::string_view::npos || text.back() != ')') {
    throw Error("workload '" + std::string(spec) +
                "': expected op(name=value,...), e.g. matmul(m=512,n=512,k=512)");
  }
  const std::string_view name = trim(text.substr(0, open));
  std::optional<OpKind> op;
  std::vector<std::string_view> op_names;
  for (OpKind candidate : kAllOps) {
    op_names.push_back(op_name(candidate));
    if (op_name(candidate) == name) op = candidate;
  }
  if (!op) {
    throw Error("workload '" + std::string(spec) + "': unknown operator '" + std::string(name) +
                "'; accepted: " + join(op_names));
  }

  SpecFields fields(spec, *op);
  const std::string_view body = trim(text.substr(open + 1, text.size() - open - 2));
  if (!body.empty()) {
    for (std::string_view item : split(body, ',')) {
      const size_t eq = item.find('=');
      if (eq == std::string_view::npos) {
        fields.fail(item.empty() ? std::string("empty field")
                                 : "expected name=value, got '" + std::string(item) + "'");
      }
      fields.add(trim(item.substr(0, eq)), trim(item.substr(eq + 1)));
    }
  }
  fields.check_required();

  Workload w;
  switch (*op) {
    case OpKind::kMatmul:
      w = Workload(MatmulShape{fields.integer("m", 0), fields.integer("n", 0),
                               fields.integer("k", 0)});
      break;
    case OpKind::kDense: {
      const int64_t bias = fields.integer("bias", 0);
      if (bias != 0 && bias != 1) fields.fail("field 'bias' must be 0 or 1");
      w = Workload(DenseShape{fields.integer("batch", 0), fields.integer("in", 0),
                              fields.integer("out", 0), bias == 1});
      break;
    }
    case OpKind::kBatchMatmul:
      w = Workload(BatchMatmulShape{fields.integer("b", 0), fields.integer("m", 0),
                                    fields.integer("n", 0), fields.integer("k", 0)});
      break;
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d: {
      const bool depthwise = *op == OpKind::kDepthwiseConv2d;
      Conv2dShape s;
      s.n = fields.integer("n", 0);
      s.c = fields.integer("c", 0);
      s.h = fields.integer("h", 0);
      s.w = fields.integer("w", 0);
      s.r = fields.integer("r", 0);
      s.s = fields.integer("s", 0);
      if (!depthwise) s.k = fields.integer("k", 0);
      s.multiplier = fields.integer("multiplier", 1);
      if (auto v = fields.dims("stride", {1, 2}, "stride=S or SHxSW")) {
        s.stride_h = v->front();
        s.stride_w = v->back();
      }
      if (auto v = fields.dims("dilation", {1, 2}, "dilation=D or DHxDW")) {
        s.dilation_h = v->front();
        s.dilation_w = v->back();
      }
      if (auto v = fields.dims("pad", {1, 2, 4}, "pad=P, PHxPW or PTxPLxPBxPR")) {
        const std::vector<int64_t>& p = *v;
        s.pad_top = p[0];
        s.pad_left = p.size() == 1 ? p[0] : p[1];
        s.pad_bottom = p.size() == 4 ? p[2] : p[0];
        s.pad_right = p.size() == 4 ? p[3] : s.pad_left;
      }
      w = Workload(s, depthwise);
      break;
    }
  }
  w.validate();
  return w;
}

void Workload::validate() const {
  const std::string what = "workload " + std::string(op_name(op_));
  auto check = [&](std::string_view field, int64_t value, int64_t min) {
    if (value < min) {
      throw Error(what + ": field '" + std::string(field) + "' must be " +
                  (min == 0 ? "non-negative" : "positive") + ", got " + std::to_string(value));
    }
    if (value > kMaxField) {
      throw Error(what + ": field '" + std::string(field) + "' = " + std::to_string(value) +
                  " is absurdly large (limit 2^31)");
    }
  };

  switch (op_) {
    case OpKind::kMatmul: {
      const auto& s = matmul();
      check("m", s.m, 1);
      check("n", s.n, 1);
      check("k", s.k, 1);
      break;
    }
    case OpKind::kDense: {
      const auto& s = dense();
      check("batch", s.batch, 1);
      check("in", s.in, 1);
      check("out", s.out, 1);
      break;
    }
    case OpKind::kBatchMatmul: {
      const auto& s = batch_matmul();
      check("b", s.b, 1);
      check("m", s.m, 1);
      check("n", s.n, 1);
      check("k", s.k, 1);
      break;
    }
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d: {
      const auto& s = conv2d();
      const bool depthwise = op_ == OpKind::kDepthwiseConv2d;
      for (auto [field, value] : {std::pair<std::string_view, int64_t>{"n", s.n},
                                  {"c", s.c}, {"h", s.h}, {"w", s.w}, {"r", s.r}, {"s", s.s},
                                  {"stride", s.stride_h}, {"stride", s.stride_w},
                                  {"dilation", s.dilation_h}, {"dilation", s.dilation_w},
                                  {"multiplier", s.multiplier}}) {
        check(field, value, 1);
      }
      for (int64_t pad : {s.pad_top, s.pad_left, s.pad_bottom, s.pad_right}) check("pad", pad, 0);
      // A depthwise k is derived, not a field; the tensor check below bounds it.
      if (!depthwise) check("k", s.k, 1);
      if (depthwise && s.k != s.c * s.multiplier) {
        throw Error(what + ": k must be c * multiplier = " + std::to_string(s.c * s.multiplier) +
                    ", got " + std::to_string(s.k));
      }
      if (!depthwise && s.multiplier != 1) {
        throw Error(what + ": field 'multiplier' is only accepted by depthwise_conv2d");
      }
      // Floor division would round a negative numerator towards zero; check
      // the padded extent against the dilated kernel directly.
      const int64_t padded_h = s.h + s.pad_top + s.pad_bottom;
      const int64_t padded_w = s.w + s.pad_left + s.pad_right;
      const int64_t kernel_h = s.dilation_h * (s.r - 1) + 1;
      const int64_t kernel_w = s.dilation_w * (s.s - 1) + 1;
      if (padded_h < kernel_h || padded_w < kernel_w) {
        auto out_size = [](int64_t padded, int64_t kernel, int64_t stride) {
          const int64_t span = padded - kernel;
          return (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
        };
        throw Error(what + ": output size out_h=" +
                    std::to_string(out_size(padded_h, kernel_h, s.stride_h)) +
                    " out_w=" + std::to_string(out_size(padded_w, kernel_w, s.stride_w)) +
                    " is not positive: the dilated kernel (" + std::to_string(kernel_h) + "x" +
                    std::to_string(kernel_w) + ") is larger than the padded input (" +
                    std::to_string(padded_h) + "x" + std::to_string(padded_w) + ")");
      }
      break;
    }
  }

  std::vector<TensorSpec> tensors = inputs();
  tensors.push_back(output());
  int64_t total_bytes = 0;
  for (const TensorSpec& t : tensors) {
    const int64_t elements = t.elements();
    if (elements > kMaxTensorElements) {
      throw Error(what + ": tensor '" + t.name + "' " + shape_text(t.shape) +
                  " would have more than 2^31 elements");
    }
    total_bytes += elements * static_cast<int64_t>(sizeof(float));
  }
  if (total_bytes > kMaxTotalBytes) {
    throw Error(what + ": its tensors would take " + std::to_string(total_bytes >> 20) +
                " MiB, more than the 4 GiB limit");
  }
}

std::string Workload::key() const {
  auto field = [](std::string_view name, const std::string& value) {
    return std::string(name) + "=" + value;
  };
  auto num = [&](std::string_view name, int64_t value) { return field(name, std::to_string(value)); };

  std::vector<std::string> parts;
  switch (op_) {
    case OpKind::kMatmul: {
      const auto& s = matmul();
      parts = {num("m", s.m), num("n", s.n), num("k", s.k)};
      break;
    }
    case OpKind::kDense: {
      const auto& s = dense();
      parts = {num("batch", s.batch), num("in", s.in), num("out", s.out), num("bias", s.bias)};
      break;
    }
    case OpKind::kBatchMatmul: {
      const auto& s = batch_matmul();
      parts = {num("b", s.b), num("m", s.m), num("n", s.n), num("k", s.k)};
      break;
    }
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d: {
      const auto& s = conv2d();
      const bool depthwise = op_ == OpKind::kDepthwiseConv2d;
      parts = {num("n", s.n), num("c", s.c), num("h", s.h), num("w", s.w)};
      if (!depthwise) parts.push_back(num("k", s.k));
      parts.push_back(num("r", s.r));
      parts.push_back(num("s", s.s));
      parts.push_back(field("stride", per_dim(s.stride_h, s.stride_w)));
      parts.push_back(field("pad", pad_text(s)));
      parts.push_back(field("dilation", per_dim(s.dilation_h, s.dilation_w)));
      if (depthwise && s.multiplier != 1) parts.push_back(num("multiplier", s.multiplier));
      break;
    }
  }
  std::string key = std::string(op_name(op_)) + "(";
  for (size_t i = 0; i < parts.size(); ++i) key += (i ? "," : "") + parts[i];
  return key + ")";
}

double Workload::flops() const {
  // Padding zeros are counted like any other input: this is the FLOP count
  // kernels are compared by (GFLOP/s), not a count of useful work.
  switch (op_) {
    case OpKind::kMatmul: {
      const auto& s = matmul();
      return 2.0 * s.m * s.n * s.k;
    }
    case OpKind::kDense: {
      // The bias add is one more FLOP per output element.
      const auto& s = dense();
      return 2.0 * s.batch * s.in * s.out + (s.bias ? 1.0 * s.batch * s.out : 0.0);
    }
    case OpKind::kBatchMatmul: {
      const auto& s = batch_matmul();
      return 2.0 * s.b * s.m * s.n * s.k;
    }
    case OpKind::kConv2d: {
      const auto& s = conv2d();
      return 2.0 * s.n * s.k * s.out_h() * s.out_w() * s.c * s.r * s.s;
    }
    case OpKind::kDepthwiseConv2d: {
      const auto& s = conv2d();
      return 2.0 * s.n * s.k * s.out_h() * s.out_w() * s.r * s.s;
    }
  }
  return 0.0;
}

std::vector<TensorSpec> Workload::inputs() const {
  switch (op_) {
    case OpKind::kMatmul: {
      const auto& s = matmul();
      return {{"A", {s.m, s.k}, false}, {"B", {s.k, s.n}, false}};
    }
    case OpKind::kDense: {
      const auto& s = dense();
      std::vector<TensorSpec> in = {{"X", {s.batch, s.in}, false}, {"W", {s.out, s.in}, true}};
      if (s.bias) in.push_back({"bias", {s.out}, true});
      return in;
    }
    case OpKind::kBatchMatmul: {
      const auto& s = batch_matmul();
      return {{"A", {s.b, s.m, s.k}, false}, {"B", {s.b, s.k, s.n}, false}};
    }
    case OpKind::kConv2d: {
      const auto& s = conv2d();
      return {{"data", {s.n, s.c, s.h, s.w}, false}, {"weight", {s.k, s.c, s.r, s.s}, true}};
    }
    case OpKind::kDepthwiseConv2d: {
      const auto& s = conv2d();
      return {{"data", {s.n, s.c, s.h, s.w}, false}, {"weight", {s.k, 1, s.r, s.s}, true}};
    }
  }
  return {};
}

TensorSpec Workload::output() const {
  switch (op_) {
    case OpKind::kMatmul: {
      const auto& s = matmul();
      return {"C", {s.m, s.n}, false};
    }
    case OpKind::kDense: {
      const auto& s = dense();
      return {"Y", {s.batch, s.out}, false};
    }
    case OpKind::kBatchMatmul: {
      const auto& s = batch_matmul();
      return {"C", {s.b, s.m, s.n}, false};
    }
    case OpKind::kConv2d:
    case OpKind::kDepthwiseConv2d: {
      const auto& s = conv2d();
      return {"out", {s.n, s.k, s.out_h(), s.out_w()}, false};
    }
  }
  return {};
}

}  // namespace ktune
