#include "schedule_space/workload.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "schedule_space/error.h"

namespace ktune {
namespace {

// The message of the ktune::Error that parsing spec throws ("" if none).
std::string parse_error(const std::string& spec) {
  try {
    Workload::parse(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WorkloadKey, RoundTripsEveryOperator) {
  const std::vector<std::string> keys = {
      "matmul(m=512,n=256,k=128)",
      "dense(batch=1,in=512,out=1000,bias=0)",
      "dense(batch=4,in=512,out=1000,bias=1)",
      "batch_matmul(b=8,m=128,n=128,k=64)",
      "conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1,dilation=1)",
      "conv2d(n=1,c=3,h=224,w=224,k=64,r=7,s=7,stride=2x1,pad=3x2,dilation=1)",
      "conv2d(n=2,c=8,h=30,w=31,k=16,r=3,s=5,stride=1x2,pad=0x1x2x3,dilation=2x1)",
      "depthwise_conv2d(n=1,c=32,h=112,w=112,r=3,s=3,stride=1,pad=1,dilation=1)",
      "depthwise_conv2d(n=1,c=32,h=112,w=112,r=3,s=3,stride=2,pad=1,dilation=2,multiplier=2)",
  };
  for (const std::string& key : keys) {
    const Workload w = Workload::parse(key);
    EXPECT_EQ(w.key(), key);
    EXPECT_EQ(Workload::parse(w.key()), w) << key;
  }
}

TEST(WorkloadKey, ConstructedWorkloadsRoundTrip) {
  Conv2dShape conv;
  conv.n = 1, conv.c = 4, conv.h = 9, conv.w = 7, conv.k = 6, conv.r = 3, conv.s = 2;
  conv.stride_h = 2, conv.pad_top = 1, conv.pad_left = 0, conv.pad_bottom = 2, conv.pad_right = 0;
  conv.dilation_w = 2;
  Conv2dShape depthwise = conv;
  depthwise.multiplier = 3;
  for (const Workload& w :
       {Workload(MatmulShape{3, 5, 7}), Workload(DenseShape{2, 3, 4, true}),
        Workload(BatchMatmulShape{2, 3, 4, 5}), Workload(conv, false),
        Workload(depthwise, true)}) {
    EXPECT_EQ(Workload::parse(w.key()), w) << w.key();
  }
  EXPECT_EQ(Workload(depthwise, true).conv2d().k, 12);  // c * multiplier
}

TEST(WorkloadKey, PerDimensionValuesPrintShortest) {
  Conv2dShape s;
  s.n = 1, s.c = 1, s.h = 8, s.w = 8, s.k = 1, s.r = 3, s.s = 3;
  s.stride_h = 2, s.stride_w = 1;
  s.pad_top = s.pad_bottom = 1;
  s.pad_left = s.pad_right = 2;
  s.dilation_h = s.dilation_w = 2;
  EXPECT_EQ(Workload(s, false).key(),
            "conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,stride=2x1,pad=1x2,dilation=2)");
}

TEST(WorkloadParse, DefaultsFillOmittedFields) {
  const Workload conv = Workload::parse("conv2d(n=1,c=3,h=8,w=8,k=4,r=3,s=3)");
  const Conv2dShape& s = conv.conv2d();
  EXPECT_EQ(s.stride_h, 1);
  EXPECT_EQ(s.stride_w, 1);
  EXPECT_EQ(s.pad_top + s.pad_left + s.pad_bottom + s.pad_right, 0);
  EXPECT_EQ(s.dilation_h, 1);
  EXPECT_EQ(s.dilation_w, 1);
  EXPECT_EQ(conv.key(), "conv2d(n=1,c=3,h=8,w=8,k=4,r=3,s=3,stride=1,pad=0,dilation=1)");

  EXPECT_FALSE(Workload::parse("dense(batch=1,in=2,out=3)").dense().bias);
  EXPECT_EQ(Workload::parse("depthwise_conv2d(n=1,c=4,h=5,w=5,r=3,s=3)").conv2d().multiplier, 1);
}

TEST(WorkloadParse, FieldOrderAndWhitespaceDoNotChangeTheKey) {
  EXPECT_EQ(Workload::parse("  matmul( k = 7 , m=3,n =5 ) ").key(), "matmul(m=3,n=5,k=7)");
  EXPECT_EQ(Workload::parse("conv2d(pad=1,s=3,r=3,k=64,w=56,h=56,c=64,n=1,stride=1)").key(),
            "conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1,dilation=1)");
  // Spelled-out per-dimension values reduce to the shortest form.
  EXPECT_EQ(Workload::parse("conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,stride=2x2,pad=1x1x1x1)").key(),
            "conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,stride=2,pad=1,dilation=1)");
  EXPECT_EQ(Workload::parse("conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,pad=1x2x1x2)").key(),
            "conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,stride=1,pad=1x2,dilation=1)");
}

TEST(WorkloadParse, PadFormsMapToTopLeftBottomRight) {
  const Conv2dShape s = Workload::parse("conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,pad=1x2x3x4)").conv2d();
  EXPECT_EQ(s.pad_top, 1);
  EXPECT_EQ(s.pad_left, 2);
  EXPECT_EQ(s.pad_bottom, 3);
  EXPECT_EQ(s.pad_right, 4);
  const Conv2dShape t = Workload::parse("conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,pad=1x2)").conv2d();
  EXPECT_EQ(t.pad_top, 1);
  EXPECT_EQ(t.pad_bottom, 1);
  EXPECT_EQ(t.pad_left, 2);
  EXPECT_EQ(t.pad_right, 2);
}

TEST(WorkloadParse, BadSpecsNameTheProblem) {
  struct Case {
    std::string spec;
    std::vector<std::string> expected;  // substrings of the message
  };
  const std::vector<Case> cases = {
      {"matmull(m=1,n=1,k=1)", {"unknown operator 'matmull'", "matmul", "depthwise_conv2d"}},
      {"matmul(m=1,n=1,k=1,q=2)", {"unknown field 'q'", "m, n, k"}},
      {"matmul(m=1,n=1)", {"missing required field 'k'"}},
      {"matmul(m=1,n=1,k=1,m=2)", {"'m' is given twice"}},
      {"matmul(m=1,n=abc,k=1)", {"'n'", "not an integer"}},
      {"matmul(m=1,n=2.5,k=1)", {"'n'", "not an integer"}},
      {"matmul(m=0,n=1,k=1)", {"'m'", "positive", "got 0"}},
      {"matmul(m=1,n=-4,k=1)", {"'n'", "positive"}},
      {"matmul(m=99999999999,n=1,k=1)", {"'m'", "absurdly large"}},
      {"matmul(m=100000,n=100000,k=1)", {"'C'", "2^31"}},
      {"matmul(m=30000,n=30000,k=30000)", {"4 GiB"}},
      {"matmul m=1", {"expected op(name=value"}},
      {"matmul(m=1,n=1,k=1", {"expected op(name=value"}},
      {"matmul(m=1,,n=1,k=1)", {"empty field"}},
      {"matmul(m1,n=1,k=1)", {"expected name=value", "m1"}},
      {"dense(batch=1,in=2,out=3,bias=2)", {"'bias'", "0 or 1"}},
      {"depthwise_conv2d(n=1,c=4,h=5,w=5,k=4,r=3,s=3)", {"unknown field 'k'", "multiplier"}},
      {"conv2d(n=1,c=1,h=2,w=8,k=1,r=5,s=3)", {"out_h=-2", "out_w=6", "not positive"}},
      {"conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,pad=-1)", {"'pad'", "non-negative"}},
      {"conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,stride=0)", {"'stride'", "positive"}},
      {"conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,stride=1x2x3)", {"'stride'", "SHxSW"}},
      {"conv2d(n=1,c=1,h=8,w=8,k=1,r=3,s=3,pad=1x2x3)", {"'pad'", "PTxPLxPBxPR"}},
  };
  for (const Case& c : cases) {
    const std::string message = parse_error(c.spec);
    ASSERT_FALSE(message.empty()) << c.spec << " parsed without error";
    for (const std::string& part : c.expected) {
      EXPECT_NE(message.find(part), std::string::npos)
          << c.spec << ": message \"" << message << "\" lacks \"" << part << "\"";
    }
  }
}

TEST(WorkloadFlops, CountsMultiplyAndAddAsTwo) {
  EXPECT_DOUBLE_EQ(Workload::parse("matmul(m=512,n=256,k=128)").flops(), 2.0 * 512 * 256 * 128);
  EXPECT_DOUBLE_EQ(Workload::parse("batch_matmul(b=4,m=8,n=16,k=32)").flops(), 2.0 * 4 * 8 * 16 * 32);
  EXPECT_DOUBLE_EQ(Workload::parse("dense(batch=2,in=10,out=5)").flops(), 2.0 * 2 * 10 * 5);
  // The bias add counts one FLOP per output.
  EXPECT_DOUBLE_EQ(Workload::parse("dense(batch=2,in=10,out=5,bias=1)").flops(),
                   2.0 * 2 * 10 * 5 + 2 * 5);
  // ResNet-50 conv2_x 3x3: 56x56 output.
  EXPECT_DOUBLE_EQ(Workload::parse("conv2d(n=1,c=64,h=56,w=56,k=64,r=3,s=3,pad=1)").flops(),
                   2.0 * 64 * 56 * 56 * 64 * 9);
  // Stride 2 halves each output dimension: 112 -> 56.
  EXPECT_DOUBLE_EQ(
      Workload::parse("depthwise_conv2d(n=1,c=32,h=112,w=112,r=3,s=3,stride=2,pad=1,multiplier=2)")
          .flops(),
      2.0 * 64 * 56 * 56 * 9);
}

TEST(WorkloadTensors, ShapesFollowTheDocumentedLayouts) {
  const Workload dense = Workload::parse("dense(batch=2,in=3,out=4,bias=1)");
  const auto in = dense.inputs();
  ASSERT_EQ(in.size(), 3u);
  EXPECT_EQ(in[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(in[0].is_weight);
  EXPECT_EQ(in[1].shape, (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(in[1].is_weight);
  EXPECT_EQ(in[2].shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(dense.output().shape, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(Workload::parse("dense(batch=2,in=3,out=4)").inputs().size(), 2u);

  const Workload conv = Workload::parse("conv2d(n=2,c=3,h=9,w=9,k=5,r=3,s=3,stride=2)");
  EXPECT_EQ(conv.inputs()[1].shape, (std::vector<int64_t>{5, 3, 3, 3}));
  EXPECT_EQ(conv.output().shape, (std::vector<int64_t>{2, 5, 4, 4}));
  EXPECT_EQ(conv.output().elements(), 2 * 5 * 4 * 4);

  const Workload dw = Workload::parse("depthwise_conv2d(n=1,c=3,h=5,w=5,r=3,s=3,multiplier=2)");
  EXPECT_EQ(dw.inputs()[1].shape, (std::vector<int64_t>{6, 1, 3, 3}));
  EXPECT_EQ(dw.output().shape, (std::vector<int64_t>{1, 6, 3, 3}));

  const Workload bmm = Workload::parse("batch_matmul(b=2,m=3,n=4,k=5)");
  EXPECT_EQ(bmm.inputs()[1].shape, (std::vector<int64_t>{2, 5, 4}));
  EXPECT_EQ(bmm.output().shape, (std::vector<int64_t>{2, 3, 4}));
}

// Runs the reference on the given inputs and returns the output.
std::vector<float> run_reference(const std::string& spec,
                                 const std::vector<std::vector<float>>& inputs) {
  const Workload w = Workload::parse(spec);
  std::vector<const float*> pointers;
  for (size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(static_cast<int64_t>(inputs[i].size()), w.inputs().at(i).elements()) << spec;
    pointers.push_back(inputs[i].data());
  }
  std::vector<float> out(w.output().elements(), -1.0f);
  reference(w, pointers, out.data());
  return out;
}

TEST(WorkloadReference, Matmul2x2) {
  EXPECT_EQ(run_reference("matmul(m=2,n=2,k=2)", {{1, 2, 3, 4}, {5, 6, 7, 8}}),
            (std::vector<float>{19, 22, 43, 50}));
}

TEST(WorkloadReference, MatmulNonSquare) {
  // A[2,3] · B[3,1].
  EXPECT_EQ(run_reference("matmul(m=2,n=1,k=3)", {{1, 2, 3, 4, 5, 6}, {1, 0, -1}}),
            (std::vector<float>{-2, -2}));
}

TEST(WorkloadReference, BatchMatmulUsesEachBatchsOwnOperands) {
  EXPECT_EQ(run_reference("batch_matmul(b=2,m=1,n=1,k=2)", {{1, 2, 3, 4}, {5, 6, 7, 8}}),
            (std::vector<float>{1 * 5 + 2 * 6, 3 * 7 + 4 * 8}));
}

TEST(WorkloadReference, DenseWithBias) {
  // X[1,2] · W[3,2]ᵀ + bias[3].
  EXPECT_EQ(run_reference("dense(batch=1,in=2,out=3,bias=1)",
                          {{1, 2}, {1, 1, 2, 0, 0, 3}, {10, 20, 30}}),
            (std::vector<float>{13, 22, 36}));
  EXPECT_EQ(run_reference("dense(batch=1,in=2,out=3)", {{1, 2}, {1, 1, 2, 0, 0, 3}}),
            (std::vector<float>{3, 2, 6}));
}

TEST(WorkloadReference, Conv3x3WithPadding) {
  // A 3x3 all-ones filter over 1..9 with pad 1: each output sums its
  // in-bounds 3x3 neighbourhood.
  const std::vector<float> data = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> ones(9, 1.0f);
  EXPECT_EQ(run_reference("conv2d(n=1,c=1,h=3,w=3,k=1,r=3,s=3,pad=1)", {data, ones}),
            (std::vector<float>{12, 21, 16, 27, 45, 33, 24, 39, 28}));
  // Stride 2 keeps the corners.
  EXPECT_EQ(run_reference("conv2d(n=1,c=1,h=3,w=3,k=1,r=3,s=3,stride=2,pad=1)", {data, ones}),
            (std::vector<float>{12, 16, 24, 28}));
  // Dilation 2x1 on a 5x5 input (1..25): the window takes rows 0, 2, 4 and
  // three adjacent columns.
  std::vector<float> data5(25);
  for (int i = 0; i < 25; ++i) data5[i] = static_cast<float>(i + 1);
  EXPECT_EQ(run_reference("conv2d(n=1,c=1,h=5,w=5,k=1,r=3,s=3,dilation=2x1)", {data5, ones}),
            (std::vector<float>{108, 117, 126}));
}

TEST(WorkloadReference, ConvSumsInputChannels) {
  // 2 input channels, 1x1 filter [2, -1]: out = 2*a - b.
  EXPECT_EQ(run_reference("conv2d(n=1,c=2,h=1,w=2,k=1,r=1,s=1)", {{1, 2, 10, 20}, {2, -1}}),
            (std::vector<float>{2 * 1 - 10, 2 * 2 - 20}));
}

TEST(WorkloadReference, DepthwiseReadsChannelOverMultiplier) {
  // c=2, multiplier=2: output channels 0,1 read input channel 0; 2,3 read 1.
  // 1x1 filters scale by 1, 2, 3, 4.
  EXPECT_EQ(run_reference("depthwise_conv2d(n=1,c=2,h=1,w=2,r=1,s=1,multiplier=2)",
                          {{1, 2, 10, 20}, {1, 2, 3, 4}}),
            (std::vector<float>{1, 2, 2, 4, 30, 60, 40, 80}));
  // 2x2 filter, no padding, on one channel.
  EXPECT_EQ(run_reference("depthwise_conv2d(n=1,c=1,h=2,w=3,r=2,s=2)",
                          {{1, 2, 3, 4, 5, 6}, {1, 0, 0, 1}}),
            (std::vector<float>{1 + 5, 2 + 6}));
}


// The conv2d definition written out directly, one output element at a time.
std::vector<float> direct_conv(const Workload& w, const std::vector<float>& data,
                               const std::vector<float>& weight) {
  const Conv2dShape& s = w.conv2d();
  const bool depthwise = w.op() == OpKind::kDepthwiseConv2d;
  const int64_t channels_per_output = depthwise ? 1 : s.c;
  std::vector<float> out;
  for (int64_t b = 0; b < s.n; ++b)
    for (int64_t oc = 0; oc < s.k; ++oc)
      for (int64_t oy = 0; oy < s.out_h(); ++oy)
        for (int64_t ox = 0; ox < s.out_w(); ++ox) {
          double sum = 0;
          for (int64_t j = 0; j < channels_per_output; ++j) {
            const int64_t ic = depthwise ? oc / s.multiplier : j;
            for (int64_t r = 0; r < s.r; ++r)
              for (int64_t q = 0; q < s.s; ++q) {
                const int64_t iy = oy * s.stride_h + r * s.dilation_h - s.pad_top;
                const int64_t ix = ox * s.stride_w + q * s.dilation_w - s.pad_left;
                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                sum += static_cast<double>(data[((b * s.c + ic) * s.h + iy) * s.w + ix]) *
                       weight[((oc * channels_per_output + j) * s.r + r) * s.s + q];
              }
          }
          out.push_back(static_cast<float>(sum));
        }
  return out;
}

TEST(WorkloadReference, ConvMatchesTheDefinitionWithAsymmetricParameters) {
  for (const char* spec :
       {"conv2d(n=2,c=3,h=9,w=8,k=4,r=3,s=2,stride=2x1,pad=1x0x2x3,dilation=1x2)",
        "conv2d(n=1,c=2,h=7,w=7,k=3,r=5,s=5,stride=3,pad=2,dilation=1)",
        "depthwise_conv2d(n=2,c=3,h=8,w=9,r=3,s=3,stride=1x2,pad=0x1x2x1,dilation=2x1,"
        "multiplier=2)"}) {
    const Workload w = Workload::parse(spec);
    std::vector<std::vector<float>> inputs;
    unsigned seed = 1;
    for (const TensorSpec& t : w.inputs()) {
      std::vector<float> values(t.elements());
      for (float& v : values) {
        seed = seed * 1103515245u + 12345u;
        v = static_cast<float>(static_cast<int>((seed >> 16) % 17) - 8);  // small integers: exact
      }
      inputs.push_back(std::move(values));
    }
    EXPECT_EQ(run_reference(spec, inputs), direct_conv(w, inputs[0], inputs[1])) << spec;
  }
}

}  // namespace
}  // namespace ktune
