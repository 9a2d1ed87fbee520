// Config spaces: an ordered list of knobs, each with a finite list of choices.
//
// A config is one choice per knob. Configs map one-to-one onto integer
// indices in mixed radix (the first knob is the least significant digit), so
// spaces of 10^12 and more are never materialized: only each knob's own
// choice list is.
//
// A ConfigSpace is immutable once built and safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace ktune {

enum class KnobKind { kSplit, kReorder, kChoice };

class Knob {
 public:
  virtual ~Knob() = default;
  virtual KnobKind kind() const = 0;
  const std::string& name() const { return name_; }
  virtual int64_t size() const = 0;
  // Readable value of a choice, e.g. "[4,8,16]", "[m0,n0,k0]", "8".
  virtual std::string describe(int64_t choice) const = 0;
  // Numeric features of a choice (split factors, permutation, value), for
  // cost models.
  virtual std::vector<double> values(int64_t choice) const = 0;
  // Choices that count as "one step away" from choice (e.g. a split with one
  // factor moved between two levels; adjacent values). Never contains choice.
  virtual std::vector<int64_t> neighbours(int64_t choice) const;

 protected:
  explicit Knob(std::string name) : name_(std::move(name)) {}

 private:
  std::string name_;
};

// Restricts a split's factorizations. SplitKnob throws ktune::Error if the
// policy leaves none.
struct SplitPolicy {
  // Every factor but the outermost is a power of two. For a power-of-two
  // extent that makes every factor a power of two; for any other extent the
  // outermost factor takes the odd part, so the axis still has tiles to tune.
  bool power_of_two = false;
  int64_t max_innermost = 0;     // bound on the last factor; 0 = no bound
  // The last factor must be a multiple of this, applied only when at least
  // one factorization allowed by the rules above satisfies it.
  int64_t innermost_multiple_of = 1;
};

// All ordered factorizations of an axis extent into `levels` factors whose
// product is exactly the extent (outermost first).
class SplitKnob : public Knob {
 public:
  SplitKnob(std::string name, int64_t extent, int levels, SplitPolicy policy = {});
  KnobKind kind() const override { return KnobKind::kSplit; }
  int64_t size() const override { return static_cast<int64_t>(factors_.size()); }
  std::string describe(int64_t choice) const override;
  std::vector<double> values(int64_t choice) const override;
  std::vector<int64_t> neighbours(int64_t choice) const override;
  int64_t extent() const { return extent_; }
  int levels() const { return levels_; }
  const std::vector<int64_t>& factors(int64_t choice) const { return factors_.at(choice); }

 private:
  int64_t extent_;
  int levels_;
  std::vector<std::vector<int64_t>> factors_;
};

// Candidate orders of named loops; each order is a permutation of loop_names.
class ReorderKnob : public Knob {
 public:
  ReorderKnob(std::string name, std::vector<std::string> loop_names,
              std::vector<std::vector<int>> orders);
  // All permutations of loop_names (keep loop_names short).
  static std::unique_ptr<ReorderKnob> all_permutations(std::string name,
                                                       std::vector<std::string> loop_names);
  KnobKind kind() const override { return KnobKind::kReorder; }
  int64_t size() const override { return static_cast<int64_t>(orders_.size()); }
  std::string describe(int64_t choice) const override;
  std::vector<double> values(int64_t choice) const override;
  // Orders one adjacent swap away; if there are none, the base rule.
  std::vector<int64_t> neighbours(int64_t choice) const override;
  const std::vector<int>& order(int64_t choice) const { return orders_.at(choice); }
  const std::vector<std::string>& loop_names() const { return loop_names_; }

 private:
  std::vector<std::string> loop_names_;
  std::vector<std::vector<int>> orders_;
};

// One integer value out of a list: unroll depth, vector width, which loops
// are parallel, pack or not (0/1), ...
class ChoiceKnob : public Knob {
 public:
  ChoiceKnob(std::string name, std::vector<int64_t> choices);
  KnobKind kind() const override { return KnobKind::kChoice; }
  int64_t size() const override { return static_cast<int64_t>(choices_.size()); }
  std::string describe(int64_t choice) const override;
  std::vector<double> values(int64_t choice) const override;
  // The adjacent entries of the list (lists are ordered, e.g. unroll 1,2,4,8).
  std::vector<int64_t> neighbours(int64_t choice) const override;
  int64_t value(int64_t choice) const { return choices_.at(choice); }
  const std::vector<int64_t>& choices() const { return choices_; }

 private:
  std::vector<int64_t> choices_;
};

// One choice per knob, and the index that encodes them.
struct Config {
  uint64_t index = 0;
  std::vector<int64_t> choices;  // choices[i] indexes knob i
  bool operator==(const Config& o) const { return choices == o.choices; }
};

class ConfigSpace {
 public:
  ConfigSpace() = default;
  ConfigSpace(ConfigSpace&&) = default;
  ConfigSpace& operator=(ConfigSpace&&) = default;

  // Adds a knob; names must be unique. Throws ktune::Error if the total size
  // would exceed 2^63 or the knob has no choice.
  void add(std::unique_ptr<Knob> knob);
  // Convenience: add and return the split / reorder / choice knob.
  const SplitKnob& add_split(std::string name, int64_t extent, int levels, SplitPolicy policy = {});
  const ReorderKnob& add_reorder(std::string name, std::vector<std::string> loop_names,
                                 std::vector<std::vector<int>> orders);
  const ChoiceKnob& add_choice(std::string name, std::vector<int64_t> choices);
  // A choice knob added to a template's space after configs of it were
  // stored: added last (the most significant digit), so every stored index
  // keeps its meaning with the first choice, and a config text that does not
  // name it (one stored before) means the first choice too; describe()
  // leaves it out at its first choice, so such a config's text is the one
  // stored before.
  const ChoiceKnob& add_later_choice(std::string name, std::vector<int64_t> choices);

  uint64_t size() const { return size_; }
  size_t num_knobs() const { return knobs_.size(); }
  const Knob& knob(size_t i) const { return *knobs_.at(i); }
  // Throws ktune::Error naming the unknown knob.
  size_t knob_index(const std::string& name) const;

  // Throws ktune::Error if index >= size().
  Config get(uint64_t index) const;
  // Throws ktune::Error if the config does not fit this space.
  uint64_t index_of(const std::vector<int64_t>& choices) const;
  Config random(std::mt19937_64& rng) const;
  // Configs that differ from c in exactly one knob, one step away.
  std::vector<Config> neighbours(const Config& c) const;

  // Readable form: "tile_m=[4,8,16] order=[m0,n0,k0] unroll=8".
  std::string describe(const Config& c) const;
  // Inverse of describe(); throws ktune::Error on an unknown knob or value.
  Config parse(const std::string& text) const;
  // A config of another shape's space carried over to this one: as parse(),
  // but a split knob's factors that do not multiply to this extent keep
  // their inner factors and get the outer one that makes the extent (a
  // 64-row [1,4,16,1] is a 128-row [2,4,16,1]), where that divides. nullopt
  // where some value is still not a choice of this space.
  std::optional<Config> parse_resized(const std::string& text) const;

  // Typed accessors for templates, by knob name.
  std::vector<int64_t> split(const Config& c, const std::string& knob) const;
  std::vector<int> order(const Config& c, const std::string& knob) const;
  int64_t value(const Config& c, const std::string& knob) const;

 private:
  // The name=value tokens of a config text; throws ktune::Error if malformed.
  std::vector<std::pair<std::string, std::string>> tokens(const std::string& text) const;

  std::vector<std::unique_ptr<Knob>> knobs_;
  std::vector<uint64_t> strides_;  // mixed-radix place values
  size_t first_later_ = SIZE_MAX;    // knobs from here on: add_later_choice
  uint64_t size_ = 1;
};

}  // namespace ktune
