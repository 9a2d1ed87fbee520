// Small ONNX models built with libonnx's protobuf classes, for the frontend
// tests and the model-tuning CLI tests.
#pragma once

#include <onnx/onnx_pb.h>

#include <random>
#include <string>
#include <vector>

namespace ktune::testing {

class OnnxModelBuilder {
 public:
  explicit OnnxModelBuilder(int64_t opset = 13) {
    model_.set_ir_version(7);
    model_.set_producer_name("ktune-test");
    auto* o = model_.add_opset_import();
    o->set_domain("");
    o->set_version(opset);
    model_.mutable_graph()->set_name("test");
  }
  // A graph input; a negative dim is symbolic ("N").
  void input(const std::string& name, const std::vector<int64_t>& dims) {
    auto* v = model_.mutable_graph()->add_input();
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = t->mutable_shape();
    for (int64_t d : dims) {
      auto* dim = shape->add_dim();
      if (d > 0) {
        dim->set_dim_value(d);
      } else {
        dim->set_dim_param("N");
      }
    }
  }
  void output(const std::string& name) {
    auto* v = model_.mutable_graph()->add_output();
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  // A float initializer with small random values.
  void weight(const std::string& name, const std::vector<int64_t>& dims) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (int64_t d : dims) {
      t->add_dims(d);
      n *= d;
    }
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    for (int64_t i = 0; i < n; ++i) t->add_float_data(u(rng_));
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return n;
  }
  static void ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void text(onnx::NodeProto* n, const std::string& name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  std::string bytes() const { return model_.SerializeAsString(); }
  onnx::ModelProto& model() { return model_; }

 private:
  onnx::ModelProto model_;
  std::mt19937 rng_{7};
};

// A small CNN-and-MLP model exercising every mapping: two identical convs
// (one task, weight 2), SAME_UPPER and asymmetric pads, a depthwise conv, a
// grouped conv (not tunable), Gemm as dense and as matmul, MatMul 2-D,
// batched with a 2-D weight, and batched x batched with broadcasting.
inline OnnxModelBuilder mixed_model(int64_t batch = 1) {
  OnnxModelBuilder b;
  b.input("x", {batch, 3, 16, 16});
  b.input("q", {2, 4, 5, 6});
  b.input("k", {4, 6, 7});
  b.weight("w1", {8, 3, 3, 3});
  b.weight("b1", {8});
  b.weight("w2", {8, 8, 3, 3});
  b.weight("w3", {8, 8, 3, 3});
  b.weight("wd", {8, 1, 3, 3});
  b.weight("wg", {8, 4, 3, 3});
  b.weight("wf", {10, 8});
  b.weight("bf", {10});
  b.weight("wm", {8, 10});
  b.weight("wq", {7, 5});
  auto* c1 = b.node("Conv", {"x", "w1", "b1"}, {"c1"}, "conv1");
  OnnxModelBuilder::ints(c1, "pads", {1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"});
  auto* c2 = b.node("Conv", {"r1", "w2"}, {"c2"}, "conv2a");
  OnnxModelBuilder::ints(c2, "pads", {1, 1, 1, 1});
  auto* c3 = b.node("Conv", {"r1", "w3"}, {"c3"}, "conv2b");
  OnnxModelBuilder::ints(c3, "pads", {1, 1, 1, 1});
  b.node("Add", {"c2", "c3"}, {"s1"});
  auto* c4 = b.node("Conv", {"s1", "w2"}, {"c4"}, "conv_same");
  OnnxModelBuilder::text(c4, "auto_pad", "SAME_UPPER");
  OnnxModelBuilder::ints(c4, "strides", {2, 2});
  auto* c5 = b.node("Conv", {"c4", "w3"}, {"c5"}, "conv_asym");
  OnnxModelBuilder::ints(c5, "pads", {0, 0, 1, 1});
  auto* dw = b.node("Conv", {"c5", "wd"}, {"d1"}, "depthwise");
  OnnxModelBuilder::integer(dw, "group", 8);
  OnnxModelBuilder::ints(dw, "pads", {1, 1, 1, 1});
  auto* g = b.node("Conv", {"d1", "wg"}, {"g1"}, "grouped");
  OnnxModelBuilder::integer(g, "group", 2);
  OnnxModelBuilder::ints(g, "pads", {1, 1, 1, 1});
  b.node("GlobalAveragePool", {"g1"}, {"p1"});
  b.node("Flatten", {"p1"}, {"f1"});
  auto* fc = b.node("Gemm", {"f1", "wf", "bf"}, {"y"}, "fc");
  OnnxModelBuilder::integer(fc, "transB", 1);
  b.node("Gemm", {"f1", "wm"}, {"y2"}, "fc_kn");
  b.node("MatMul", {"q", "k"}, {"qk"}, "attention");
  b.node("MatMul", {"k", "wq"}, {"kw"}, "projection");
  b.output("y");
  b.output("y2");
  b.output("qk");
  b.output("kw");
  return b;
}

}  // namespace ktune::testing
