// Best packs as `ktune import --best FILE` reads them (db/jsonl.h).
#include "db/jsonl.h"
#include "fuzz/fuzz_check.h"
#include "schedule_space/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const ktune::ImportFile pack = ktune::read_best_pack(ktune::fuzz::text_of(data, size), "fuzz.json");
    ktune::fuzz::expect(pack.batch.marked_best.size() == pack.batch.records.size(), "an entry without its best mark");
    ktune::fuzz::expect(pack.lines == static_cast<int64_t>(pack.batch.records.size()), "entries lost without an error");
  } catch (const ktune::Error&) {
  }
  return 0;
}
