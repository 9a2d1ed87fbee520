// Record logs as `ktune import FILE` reads them (db/jsonl.h): every line
// validated before anything is stored.
#include <sstream>

#include "db/jsonl.h"
#include "fuzz/fuzz_check.h"
#include "schedule_space/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = ktune::fuzz::text_of(data, size);
  // --skip-bad: every non-empty line is either a record or a listed problem.
  std::istringstream lenient(text);
  const ktune::ImportFile skipping = ktune::read_jsonl(lenient, "fuzz.jsonl", true);
  ktune::fuzz::expect(skipping.lines == static_cast<int64_t>(skipping.batch.records.size()) + skipping.skipped,
                      "lines are neither records nor skipped");
  ktune::fuzz::expect(skipping.problems.size() == static_cast<size_t>(skipping.skipped), "a skipped line without a problem");
  ktune::fuzz::expect(skipping.batch.marked_best.size() == skipping.batch.records.size(), "a record without its best mark");
  // Without it: the same records, or an error naming the first bad line.
  std::istringstream strict(text);
  try {
    const ktune::ImportFile all = ktune::read_jsonl(strict, "fuzz.jsonl", false);
    ktune::fuzz::expect(skipping.skipped == 0 && all.batch.records.size() == skipping.batch.records.size(),
                        "a file read whole that has bad lines when skipping");
  } catch (const ktune::Error&) {
    ktune::fuzz::expect(skipping.skipped > 0, "a file refused whole that has no bad line when skipping");
  }
  return 0;
}
