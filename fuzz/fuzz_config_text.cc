// Config text as users give it (ktune tune --config, ktune space --config)
// and as records carry it, read against real spaces: the first byte picks
// one of a few (workload, template, target) spaces, the rest is the text.
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "schedule_space/error.h"
#include "schedule_space/template.h"
#include "schedule_space/workload.h"

namespace ktune {
namespace {

struct Space {
  Workload workload;
  Target target;
  const Template* tmpl;
  ConfigSpace space;
};

// Every template of a few small shapes of each operator, CPU and GPU.
const std::vector<std::unique_ptr<Space>>& spaces() {
  static const std::vector<std::unique_ptr<Space>> all = [] {
    std::vector<std::unique_ptr<Space>> out;
    const Target cpu = fuzz::cpu_target();
    const Target gpu = cuda_target_for_arch("sm_80");
    for (const char* spec : {"matmul(m=24,n=32,k=16)", "dense(batch=1,in=64,out=48,bias=1)",
                             "batch_matmul(b=2,m=12,n=16,k=8)",
                             "conv2d(n=1,c=8,h=10,w=10,k=16,r=3,s=3,stride=1,pad=1)",
                             "conv2d(n=1,c=16,h=7,w=7,k=32,r=1,s=1)",
                             "depthwise_conv2d(n=1,c=16,h=9,w=9,r=3,s=3,stride=2,pad=1)"}) {
      const Workload w = Workload::parse(spec);
      for (const Target& t : {cpu, gpu}) {
        for (const Template* tmpl : templates_for(w, t.kind)) {
          out.push_back(std::make_unique<Space>(Space{w, t, tmpl, tmpl->space(w, t)}));
        }
      }
    }
    return out;
  }();
  return all;
}

void config_text(const Space& s, const std::string& text) {
  const std::string where = s.tmpl->name() + " for " + s.workload.key() + ": '" + text + "'";
  std::optional<Config> resized = s.space.parse_resized(text);
  Config c;
  try {
    c = s.space.parse(text);
  } catch (const Error&) {
    return;
  }
  // What parses describes itself in a text that reads back, and names the
  // config of its index.
  fuzz::expect(c.index < s.space.size(), "index out of the space: " + where);
  fuzz::expect(s.space.get(c.index) == c, "index does not name the config: " + where);
  fuzz::expect(s.space.parse(s.space.describe(c)) == c, "describe does not read back: " + where);
  fuzz::expect(resized && *resized == c, "parse_resized differs from parse on a config of the space: " + where);
  // What `ktune space --config TEXT --code` does next.
  if (s.tmpl->check(s.workload, s.target, s.space, c)) return;
  (void)s.tmpl->instantiate(s.workload, s.target, s.space, c);
}

}  // namespace
}  // namespace ktune

// KTUNE_FUZZ_SEEDS=DIR writes the seed corpus (fuzz/corpus/fuzz_config_text):
// config 0 and a few random configs of every space, each behind its space's
// byte.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("KTUNE_FUZZ_SEEDS");
  if (dir == nullptr) return 0;
  const auto& all = ktune::spaces();
  std::mt19937_64 rng(19);
  for (size_t i = 0; i < all.size(); ++i) {
    const ktune::ConfigSpace& space = all[i]->space;
    for (int n = 0; n < 3; ++n) {
      const std::string text = space.describe(n == 0 ? space.get(0) : space.random(rng));
      std::ofstream out(std::string(dir) + "/" + all[i]->tmpl->name() + "-" + std::to_string(i) + "-" +
                        std::to_string(n));
      out << static_cast<char>(i) << text;
    }
  }
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& all = ktune::spaces();
  ktune::config_text(*all[data[0] % all.size()], ktune::fuzz::text_of(data + 1, size - 1));
  return 0;
}
