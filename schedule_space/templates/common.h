// Building blocks shared by the CPU templates (matmul family, conv2d family).
//
// A CPU template is mostly the same few ideas put together differently:
// axes split into tile levels (SplitAxis), loops ordered and some of them
// fused into one parallel loop (LoopNest), a register tile of accumulators
// that the code generator keeps in vector registers (RegisterTile), and
// operands copied into blocked layouts (fill). Templates name these parts
// instead of re-spelling the loops.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "schedule_space/ir.h"
#include "schedule_space/target.h"
#include "schedule_space/template.h"

namespace ktune::templates {

// ---- integer helpers ----

// a rounded up to a multiple of b (b > 0).
int64_t round_up(int64_t a, int64_t b);
// Ceiling of a / b for positive b.
int64_t ceil_div(int64_t a, int64_t b);
// True if x is a power of two (1 included).
bool is_power_of_two(int64_t x);

// The extent an axis is padded to so that exact splits still offer a useful
// register-tile size: `extent` itself if it is <= hi or already has a divisor
// in [lo, hi], otherwise the smallest larger value that has one. Padding adds
// at most lo - 1 rows of wasted work; the template must guard the padded part
// (clamp reads, skip writes). Deterministic, so spaces stay stable.
int64_t pad_for_tiling(int64_t extent, int64_t lo, int64_t hi);

// The tile size in [least, most] (in units of `unit` elements) whose whole
// tiles pad `extent` least, the largest of equals: a register tile moved off
// the register file's maximum when a slightly smaller one leaves no partial
// tile (64 rows: 13-row tiles waste 1 row, 14-row tiles 6).
int64_t least_padded(int64_t extent, int64_t most, int64_t least, int64_t unit = 1);

// The largest divisor of n that is <= target (at least 1): the exact block
// size nearest below a cache-derived target, for exact splits.
int64_t divisor_at_most(int64_t n, int64_t target);

// ---- operators ----

// Why template `tmpl`, a CPU template for operator `want`, cannot take w on
// t (another operator, or not a CPU target), or nullopt.
std::optional<std::string> check_cpu_op(const std::string& tmpl, OpKind want, const Workload& w, const Target& t);

// The operator's tensors as global buffers in Program::params order: its
// inputs (Workload::inputs()), then its output.
std::vector<ir::Buffer> operator_buffers(const Workload& w);

// ---- seed configs (Template::seed_configs) ----

// Collects seed configs given as describe() text, knob by knob. A text that
// does not fit the space (a factor that does not divide, a value not in a
// knob's list) or that the template's check() rejects is dropped: a seed is
// a hint, and the model behind it may be off for odd shapes. Duplicates are
// dropped too; order is kept.
class SeedList {
 public:
  SeedList(const Workload& w, const Target& t, const ConfigSpace& space, const Template& tmpl)
      : w_(w), t_(t), space_(space), tmpl_(tmpl) {}
  void add(const std::string& text);
  std::vector<Config> take() { return std::move(seeds_); }

 private:
  const Workload& w_;
  const Target& t_;
  const ConfigSpace& space_;
  const Template& tmpl_;
  std::vector<Config> seeds_;
};

// "[a,b,c]", as split knobs print their factors.
std::string factors_text(const std::vector<int64_t>& factors);

// ---- target facts ----

// Architectural vector registers available to a micro-kernel: 32 for avx512
// and neon, 16 otherwise (avx2, sse4, generic).
int vector_registers(const CpuTarget& target);

// Vector widths (fp32 lanes) a template may use on an axis of `extent`:
// powers of two <= target.vector_lanes that divide extent, widest first.
// Always non-empty: 1 (scalar) is the last resort.
std::vector<int64_t> vector_width_choices(const CpuTarget& target, int64_t extent);

// Why a rows x cols register tile of `lanes`-wide vectors would not fit, or
// nullopt if it fits: lanes must be a power of two, cols a multiple of lanes,
// and rows * cols/lanes accumulators + cols/lanes operand vectors + one
// broadcast must fit in vector_registers(target).
std::optional<std::string> check_register_tile(const CpuTarget& target, int64_t rows, int64_t cols,
                                               int64_t lanes);

// ---- loop nests ----

// for var in 0..extent of kind around body(var); a loop of extent 1
// vanishes (body(0)).
ir::Stmt loop_or_single(const std::string& var, int64_t extent, ir::LoopKind kind,
                        const std::function<ir::Stmt(ir::Expr)>& body);

// An ordered list of loops (outermost first) whose variables a template reads
// back as expressions before building the body. Loops of extent 1 are not
// emitted and their variable reads as 0; fused parallel loops read as
// floordiv/floormod of the fused variable. Build the body only after all
// add / fuse_parallel calls.
class LoopNest {
 public:
  // Appends a loop inside the ones added before. Variable names must be unique.
  void add(const std::string& var, int64_t extent, ir::LoopKind kind = ir::LoopKind::kSerial);
  // Fuses the `count` outermost loops into one parallel loop named after
  // them ("m0_n0_fused"); count 1 just makes the outermost loop parallel,
  // count 0 does nothing. Throws ktune::Error if count exceeds the loops.
  void fuse_parallel(int count);
  // The value of loop variable `var` inside the body; throws ktune::Error for
  // an unknown name.
  ir::Expr var(const std::string& var) const;
  // Extent and kind of loop `var`.
  int64_t extent(const std::string& var) const;
  ir::LoopKind kind(const std::string& var) const;
  // Each iteration of loop `var` runs the loops inside it only where cond
  // holds (e.g. a kernel row that falls in the padding is skipped); cond may
  // use the variables of this loop and of the loops around it. Throws
  // ktune::Error for an unknown name; a second guard on one loop is and-ed.
  void guard(const std::string& var, ir::Expr cond);
  // body wrapped in the loops.
  ir::Stmt wrap(ir::Stmt body) const;
  size_t size() const { return loops_.size(); }

 private:
  struct Loop {
    std::string var;
    int64_t extent;
    ir::LoopKind kind;
    ir::Expr guard;  // null: none
  };
  const Loop& find(const std::string& var) const;
  std::vector<Loop> loops_;
  int fused_ = 0;  // how many outermost loops are fused into one parallel loop
};

// An axis split into tile levels (outermost first), as given by a SplitKnob.
// Level i's loop variable is named "<name><i>" (e.g. m0, m1, m2).
struct SplitAxis {
  std::string name;
  std::vector<int64_t> factors;

  std::string level(size_t i) const;  // loop variable name of level i
  int64_t factor(size_t i) const { return factors.at(i); }
  // Product of the factors of levels >= i (the extent one iteration of level
  // i - 1 covers); stride(levels) is 1.
  int64_t stride(size_t i) const;
  // Sum of level variables times their strides over the first `levels`
  // levels (all levels if levels < 0): with all levels it is the axis index,
  // with all but the innermost it is the start of the innermost tile.
  ir::Expr index(const LoopNest& nest, int levels = -1) const;
};

// ---- register tiles (micro-kernels) ----

// A rows x cols block of accumulators in register scope: cols is a multiple
// of lanes and every access goes through for_each(), so the code generator
// declares it as rows * cols/lanes vector registers.
struct RegisterTile {
  ir::Buffer acc;  // [rows, cols], Scope::kRegister
  int64_t rows = 0, cols = 0, lanes = 0;
  std::string prefix;  // prefix of the tile's loop variables

  // Throws ktune::Error if cols is not a multiple of lanes or lanes is not a
  // power of two.
  RegisterTile(const std::string& name, int64_t rows, int64_t cols, int64_t lanes);

  // for row (unrolled) / col vector (unrolled) / lane (vectorized): f(row, col).
  // f must return stores whose value is affine in col (see codegen_cpp.h).
  ir::Stmt for_each(const std::function<ir::Stmt(ir::Expr row, ir::Expr col)>& f) const;
  // acc = 0.
  ir::Stmt zero() const;
  // acc[row, col] += f(row, col), for every element (one reduction step).
  ir::Stmt accumulate(const std::function<ir::Expr(ir::Expr row, ir::Expr col)>& f) const;
  ir::Expr value(ir::Expr row, ir::Expr col) const;  // load acc[row, col]

  // Writes the tile out through store(row, col, acc value). valid_rows and
  // valid_cols (may be null: all valid) are how many rows / columns of the
  // tile exist in the output (may exceed rows / cols): rows past valid_rows
  // are skipped, and a tile with fewer than cols valid columns stores its
  // whole vectors as vectors and the one the edge cuts element by element,
  // while full tiles keep all their vector stores.
  ir::Stmt write_back(const std::function<ir::Stmt(ir::Expr row, ir::Expr col, ir::Expr value)>& store,
                      ir::Expr valid_rows = nullptr, ir::Expr valid_cols = nullptr) const;

  // Wraps a reduction around a tile: zero, the reduction nest around
  // accumulate(f), then write_back — inside an Allocate of acc.
  ir::Stmt compute(const LoopNest& reduction,
                   const std::function<ir::Expr(ir::Expr row, ir::Expr col)>& f,
                   ir::Stmt write_back) const;
  // The same with the rows outside the reduction: each row's whole
  // reduction, then the next row's (values that neighbouring rows share are
  // used again at once, not a tile later).
  ir::Stmt compute_by_rows(const LoopNest& reduction,
                           const std::function<ir::Expr(ir::Expr row, ir::Expr col)>& f,
                           ir::Stmt write_back) const;

 private:
  // for col vector (unrolled) / lane (vectorized) of one row: f(row, col).
  ir::Stmt for_each_in_row(ir::Expr row, const std::function<ir::Stmt(ir::Expr row, ir::Expr col)>& f) const;
};

// ---- input rows split by stride phase (the NCHW templates) ----

// A buffer of input rows whose columns are split by phase of the stride:
// column x of phase p holds padded column x * stride + p, image column
// x * stride + p - pad_left, so every kernel tap reads contiguous columns
// whatever the stride. `cols` columns per phase; width: the image's.
struct StridePhases {
  int64_t stride = 1, pad_left = 0, width = 0, cols = 0;

  // The columns [lo, hi) of phase p that hold image columns; the others are
  // padding (zeros).
  std::pair<int64_t, int64_t> inside(int64_t p) const;
  // The image column that column x of phase p holds.
  ir::Expr image_col(const ir::Expr& x, int64_t p) const;
  // A tap at padded-column offset tap_col (its column times the dilation)
  // reads phase(tap_col), its columns shifted by shift(tap_col).
  ir::Expr phase(const ir::Expr& tap_col) const;
  ir::Expr shift(const ir::Expr& tap_col) const;
  // One row of phase p, all its columns (loop variable var_prefix + "x..."):
  // store(column, value) with image(image column) inside the image and 0
  // in the padding; with no image, zeros everywhere.
  ir::Stmt fill_row(int64_t p, const std::string& var_prefix,
                    const std::function<ir::Stmt(ir::Expr col, ir::Expr value)>& store,
                    const std::function<ir::Expr(ir::Expr image_col)>& image) const;
};

// ---- layout transforms ----

// dst[i0, ..., in] = value({i0, ..., in}) for every element of dst: the loop
// nest a template uses to pack an operand into a blocked layout (or zero-pad
// it; value may be a select). The outermost loop gets outer_kind (serial or
// parallel; a parallel outermost loop of one iteration is fused with the
// loops inside it up to the first of several). Loop variables are named "<prefix>0", "<prefix>1", ...
ir::Stmt fill(const ir::Buffer& dst, const std::string& prefix,
              const std::function<ir::Expr(const std::vector<ir::Expr>& index)>& value,
              ir::LoopKind outer_kind = ir::LoopKind::kSerial);
// The same with the loops in another order: loop_order lists dst's
// dimensions outermost first (a permutation of 0..rank-1), e.g. to read a
// source row by row while writing several panels. Throws ktune::Error if it
// is not a permutation.
ir::Stmt fill(const ir::Buffer& dst, const std::string& prefix,
              const std::function<ir::Expr(const std::vector<ir::Expr>& index)>& value,
              ir::LoopKind outer_kind, const std::vector<size_t>& loop_order);
// dst[..., k, r] = value({..., k, r}) for a packing that reads its source
// contiguously along k (dst's next-to-last dimension) and writes it
// contiguously along r (the last), as A's row panels [panel][k][row]: a
// vector of `lanes` k values of every r is loaded into a register tile and
// the tile written transposed (the code generator transposes lanes x lanes
// blocks in registers), rather than one element at a time, r elements
// apart. Loops as fill's over the other dimensions, then k by vectors.
// nullopt where it does not apply: k not a multiple of lanes, fewer r
// than half the lanes (no transpose then) or more than twice the lanes (the
// unrolled tile's code would cost more to compile than it saves).
std::optional<ir::Stmt> fill_transposed(const ir::Buffer& dst, const std::string& prefix,
                                        const std::function<ir::Expr(const std::vector<ir::Expr>& index)>& value,
                                        ir::LoopKind outer_kind, int64_t lanes);

// The choice of split knob `knob` whose inner factors (every factor after
// the outermost) are nearest to want, summing |log2(factor / wanted)| over
// the factors want names; the first such choice on ties.
int64_t nearest_split_choice(const ConfigSpace& space, const std::string& knob, const std::vector<double>& want);

// ---- GPU ----

// Why a thread block of `threads` threads using `shared_bytes` of static
// shared memory and about `registers` registers per thread cannot run on d
// (or is under half a warp), or nullopt.
std::optional<std::string> check_gpu_block(const CudaTarget& d, int64_t threads, int64_t shared_bytes,
                                           int64_t registers);

// A thread block's cooperative copy of a tile of `shape` (into shared
// memory, or out of it): its nthreads threads (tid the thread's index in the
// block) take elements e = l * nthreads + tid for l = 0, 1, ...; put(indices)
// stores element e at its indices, counted row-major, or with the first
// dimension varying fastest when first_fastest (so that consecutive threads
// walk the dimension that is contiguous in the global operand). With
// vector_width w > 1 a thread takes w consecutive elements of that fastest
// dimension at a time (its extent must be a multiple of w): put is called
// inside a vectorized loop of w steps, and the CUDA code generator makes the
// accesses that are contiguous and aligned in it one vector load or store.
// Guarded where nthreads does not divide the work; the l loop is unrolled up
// to 8 steps. Throws ktune::Error if w does not divide the fastest extent.
ir::Stmt cooperative_copy(const std::string& var, const std::vector<int64_t>& shape, int64_t nthreads,
                          const ir::Expr& tid, bool first_fastest,
                          const std::function<ir::Stmt(const std::vector<ir::Expr>&)>& put, int64_t vector_width = 1);

// The GPU templates' unroll knobs, after TVM's: auto_unroll_max_step (loops
// whose nest runs at most that many statements are unrolled; 0 none) and
// unroll_explicit (unrolled loops become copies in the source rather than
// `#pragma unroll`). add_unroll_knobs adds them to a space; apply_unroll_knobs
// marks a kernel body's loops (ir::unroll_loops) and sets the program's
// explicit_unroll.
void add_unroll_knobs(ConfigSpace& space);
void apply_unroll_knobs(const ConfigSpace& space, const Config& c, ir::Program& program);

}  // namespace ktune::templates
