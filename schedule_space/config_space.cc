#include "schedule_space/config_space.h"

#include <algorithm>
#include <cctype>
#include <numeric>
#include <set>
#include <sstream>

#include "schedule_space/error.h"

namespace ktune {

namespace {

// Spaces larger than this would not fit the uint64_t index with headroom for
// the arithmetic callers do on indices (size() + 1, differences, ...).
constexpr uint64_t kMaxSpaceSize = uint64_t{1} << 63;

// How many values an error message lists before "...".
constexpr int64_t kMaxListedChoices = 12;

bool is_power_of_two(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

std::vector<int64_t> prime_factors(int64_t x) {
  std::vector<int64_t> primes;
  for (int64_t p = 2; p * p <= x; ++p) {
    if (x % p != 0) continue;
    primes.push_back(p);
    while (x % p == 0) x /= p;
  }
  if (x > 1) primes.push_back(x);
  return primes;
}

std::vector<int64_t> divisors(int64_t x) {
  std::vector<int64_t> small, large;
  for (int64_t d = 1; d * d <= x; ++d) {
    if (x % d != 0) continue;
    small.push_back(d);
    if (d != x / d) large.push_back(x / d);
  }
  small.insert(small.end(), large.rbegin(), large.rend());
  return small;
}

// Appends every ordered factorization of `rest` into `levels_left` factors,
// each prefixed by `prefix`, in lexicographic order. `candidates` are the
// divisors of the whole extent, ascending (every factor is one of them).
void enumerate_factorizations(int64_t rest, int levels_left,
                              const std::vector<int64_t>& candidates,
                              std::vector<int64_t>& prefix,
                              std::vector<std::vector<int64_t>>& out) {
  if (levels_left == 1) {
    prefix.push_back(rest);
    out.push_back(prefix);
    prefix.pop_back();
    return;
  }
  for (int64_t d : candidates) {
    if (d > rest) break;
    if (rest % d != 0) continue;
    prefix.push_back(d);
    enumerate_factorizations(rest / d, levels_left - 1, candidates, prefix, out);
    prefix.pop_back();
  }
}

template <typename T>
std::string join(const std::vector<T>& items, const char* separator) {
  std::ostringstream os;
  for (size_t i = 0; i < items.size(); ++i) os << (i ? separator : "") << items[i];
  return os.str();
}

std::string listed_choices(const Knob& knob) {
  std::ostringstream os;
  int64_t shown = std::min(knob.size(), kMaxListedChoices);
  for (int64_t i = 0; i < shown; ++i) os << (i ? " " : "") << knob.describe(i);
  if (shown < knob.size()) os << " ... (" << knob.size() << " in all)";
  return os.str();
}

void check_choice(const Knob& knob, int64_t choice) {
  if (choice < 0 || choice >= knob.size()) {
    throw Error("knob '" + knob.name() + "': choice " + std::to_string(choice) +
                " is out of range [0, " + std::to_string(knob.size()) + ")");
  }
}

std::string strip_spaces(std::string_view text) {
  std::string out;
  for (char ch : text) {
    if (!std::isspace(static_cast<unsigned char>(ch))) out += ch;
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Knob

std::vector<int64_t> Knob::neighbours(int64_t choice) const {
  // Small lists have no meaningful order, so every other entry is one step
  // away; large ones are assumed ordered, so only the adjacent entries are.
  constexpr int64_t kSmall = 8;
  std::vector<int64_t> result;
  if (size() <= kSmall) {
    for (int64_t i = 0; i < size(); ++i) {
      if (i != choice) result.push_back(i);
    }
    return result;
  }
  if (choice > 0) result.push_back(choice - 1);
  if (choice + 1 < size()) result.push_back(choice + 1);
  return result;
}

// ---------------------------------------------------------------------------
// SplitKnob

SplitKnob::SplitKnob(std::string name, int64_t extent, int levels, SplitPolicy policy)
    : Knob(std::move(name)), extent_(extent), levels_(levels) {
  const std::string where = "split knob '" + this->name() + "'";
  if (extent < 1) throw Error(where + ": extent must be positive, got " + std::to_string(extent));
  if (levels < 1) throw Error(where + ": levels must be at least 1, got " + std::to_string(levels));
  if (policy.max_innermost < 0 || policy.innermost_multiple_of < 1) {
    throw Error(where + ": max_innermost must be >= 0 (0 = no bound) and innermost_multiple_of >= 1");
  }

  std::vector<std::vector<int64_t>> all;
  std::vector<int64_t> prefix;
  enumerate_factorizations(extent, levels, divisors(extent), prefix, all);

  auto allowed = [&](const std::vector<int64_t>& f) {
    if (policy.power_of_two &&
        !std::all_of(f.begin() + 1, f.end(), [](int64_t x) { return is_power_of_two(x); })) {
      return false;
    }
    return policy.max_innermost == 0 || f.back() <= policy.max_innermost;
  };
  for (auto& f : all) {
    if (allowed(f)) factors_.push_back(std::move(f));
  }

  // The multiple-of rule is a preference: an axis too short for it keeps
  // every tile size rather than becoming untunable.
  if (policy.innermost_multiple_of > 1) {
    std::vector<std::vector<int64_t>> multiples;
    for (const auto& f : factors_) {
      if (f.back() % policy.innermost_multiple_of == 0) multiples.push_back(f);
    }
    if (!multiples.empty()) factors_ = std::move(multiples);
  }

  if (factors_.empty()) {
    throw Error(where + ": no factorization of extent " + std::to_string(extent) + " into " +
                std::to_string(levels) + " levels satisfies the policy (power_of_two=" +
                (policy.power_of_two ? "1" : "0") +
                ", max_innermost=" + std::to_string(policy.max_innermost) + ")");
  }
}

std::string SplitKnob::describe(int64_t choice) const {
  check_choice(*this, choice);
  return "[" + join(factors_[choice], ",") + "]";
}

std::vector<double> SplitKnob::values(int64_t choice) const {
  check_choice(*this, choice);
  return {factors_[choice].begin(), factors_[choice].end()};
}

std::vector<int64_t> SplitKnob::neighbours(int64_t choice) const {
  check_choice(*this, choice);
  // factors_ is in lexicographic order (enumeration order, filtered), so a
  // candidate factorization is found by binary search.
  const std::vector<int64_t>& base = factors_[choice];
  std::vector<int64_t> result;
  for (int from = 0; from < levels_; ++from) {
    for (int64_t p : prime_factors(base[from])) {
      for (int to = 0; to < levels_; ++to) {
        if (to == from) continue;
        std::vector<int64_t> moved = base;
        moved[from] /= p;
        moved[to] *= p;
        auto it = std::lower_bound(factors_.begin(), factors_.end(), moved);
        if (it != factors_.end() && *it == moved) result.push_back(it - factors_.begin());
      }
    }
  }
  std::sort(result.begin(), result.end());
  return result;
}

// ---------------------------------------------------------------------------
// ReorderKnob

ReorderKnob::ReorderKnob(std::string name, std::vector<std::string> loop_names,
                         std::vector<std::vector<int>> orders)
    : Knob(std::move(name)), loop_names_(std::move(loop_names)), orders_(std::move(orders)) {
  const std::string where = "reorder knob '" + this->name() + "'";
  if (loop_names_.empty()) throw Error(where + ": needs at least one loop name");
  if (std::set<std::string>(loop_names_.begin(), loop_names_.end()).size() != loop_names_.size()) {
    throw Error(where + ": loop names must be unique, got [" + join(loop_names_, ",") + "]");
  }
  if (orders_.empty()) throw Error(where + ": needs at least one order");
  std::vector<int> identity(loop_names_.size());
  std::iota(identity.begin(), identity.end(), 0);
  std::set<std::vector<int>> seen;
  for (const auto& order : orders_) {
    std::vector<int> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    if (sorted != identity) {
      throw Error(where + ": order [" + join(order, ",") + "] is not a permutation of 0.." +
                  std::to_string(loop_names_.size() - 1));
    }
    if (!seen.insert(order).second) {
      throw Error(where + ": order [" + join(order, ",") + "] is listed twice");
    }
  }
}

std::unique_ptr<ReorderKnob> ReorderKnob::all_permutations(std::string name,
                                                           std::vector<std::string> loop_names) {
  std::vector<int> order(loop_names.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::vector<int>> orders;
  do {
    orders.push_back(order);
  } while (std::next_permutation(order.begin(), order.end()));
  return std::make_unique<ReorderKnob>(std::move(name), std::move(loop_names), std::move(orders));
}

std::string ReorderKnob::describe(int64_t choice) const {
  check_choice(*this, choice);
  std::vector<std::string> names;
  for (int loop : orders_[choice]) names.push_back(loop_names_[loop]);
  return "[" + join(names, ",") + "]";
}

std::vector<double> ReorderKnob::values(int64_t choice) const {
  check_choice(*this, choice);
  return {orders_[choice].begin(), orders_[choice].end()};
}

std::vector<int64_t> ReorderKnob::neighbours(int64_t choice) const {
  check_choice(*this, choice);
  std::vector<int64_t> result;
  const std::vector<int>& base = orders_[choice];
  for (size_t i = 0; i + 1 < base.size(); ++i) {
    std::vector<int> swapped = base;
    std::swap(swapped[i], swapped[i + 1]);
    auto it = std::find(orders_.begin(), orders_.end(), swapped);
    if (it != orders_.end()) result.push_back(it - orders_.begin());
  }
  if (result.empty()) return Knob::neighbours(choice);
  std::sort(result.begin(), result.end());
  return result;
}

// ---------------------------------------------------------------------------
// ChoiceKnob

ChoiceKnob::ChoiceKnob(std::string name, std::vector<int64_t> choices)
    : Knob(std::move(name)), choices_(std::move(choices)) {
  if (choices_.empty()) throw Error("choice knob '" + this->name() + "': needs at least one value");
  if (std::set<int64_t>(choices_.begin(), choices_.end()).size() != choices_.size()) {
    throw Error("choice knob '" + this->name() + "': values must be unique, got [" +
                join(choices_, ",") + "]");
  }
}

std::string ChoiceKnob::describe(int64_t choice) const {
  check_choice(*this, choice);
  return std::to_string(choices_[choice]);
}

std::vector<double> ChoiceKnob::values(int64_t choice) const {
  check_choice(*this, choice);
  return {static_cast<double>(choices_[choice])};
}

std::vector<int64_t> ChoiceKnob::neighbours(int64_t choice) const {
  check_choice(*this, choice);
  std::vector<int64_t> result;
  if (choice > 0) result.push_back(choice - 1);
  if (choice + 1 < size()) result.push_back(choice + 1);
  return result;
}

// ---------------------------------------------------------------------------
// ConfigSpace

void ConfigSpace::add(std::unique_ptr<Knob> knob) {
  if (!knob) throw Error("ConfigSpace::add: null knob");
  for (const auto& existing : knobs_) {
    if (existing->name() == knob->name()) {
      throw Error("config space already has a knob named '" + knob->name() + "'");
    }
  }
  const uint64_t choices = static_cast<uint64_t>(knob->size());
  if (choices == 0) throw Error("knob '" + knob->name() + "' has no choice");
  if (size_ > kMaxSpaceSize / choices) {
    throw Error("config space too large: adding knob '" + knob->name() + "' (" +
                std::to_string(choices) + " choices) to " + std::to_string(size_) +
                " configs exceeds 2^63");
  }
  strides_.push_back(size_);
  size_ *= choices;
  knobs_.push_back(std::move(knob));
}

const SplitKnob& ConfigSpace::add_split(std::string name, int64_t extent, int levels,
                                        SplitPolicy policy) {
  auto knob = std::make_unique<SplitKnob>(std::move(name), extent, levels, policy);
  const SplitKnob& ref = *knob;
  add(std::move(knob));
  return ref;
}

const ReorderKnob& ConfigSpace::add_reorder(std::string name, std::vector<std::string> loop_names,
                                            std::vector<std::vector<int>> orders) {
  auto knob = std::make_unique<ReorderKnob>(std::move(name), std::move(loop_names),
                                            std::move(orders));
  const ReorderKnob& ref = *knob;
  add(std::move(knob));
  return ref;
}

const ChoiceKnob& ConfigSpace::add_choice(std::string name, std::vector<int64_t> choices) {
  auto knob = std::make_unique<ChoiceKnob>(std::move(name), std::move(choices));
  const ChoiceKnob& ref = *knob;
  add(std::move(knob));
  return ref;
}

const ChoiceKnob& ConfigSpace::add_later_choice(std::string name, std::vector<int64_t> choices) {
  first_later_ = std::min(first_later_, knobs_.size());
  return add_choice(std::move(name), std::move(choices));
}

size_t ConfigSpace::knob_index(const std::string& name) const {
  std::vector<std::string> names;
  for (size_t i = 0; i < knobs_.size(); ++i) {
    if (knobs_[i]->name() == name) return i;
    names.push_back(knobs_[i]->name());
  }
  throw Error("unknown knob '" + name + "'; this space has: " +
              (names.empty() ? std::string("(no knobs)") : join(names, ", ")));
}

Config ConfigSpace::get(uint64_t index) const {
  if (index >= size_) {
    throw Error("config index " + std::to_string(index) + " is out of range: the space has " +
                std::to_string(size_) + " configs");
  }
  Config c;
  c.index = index;
  c.choices.reserve(knobs_.size());
  for (size_t i = 0; i < knobs_.size(); ++i) {
    c.choices.push_back(static_cast<int64_t>((index / strides_[i]) %
                                             static_cast<uint64_t>(knobs_[i]->size())));
  }
  return c;
}

uint64_t ConfigSpace::index_of(const std::vector<int64_t>& choices) const {
  if (choices.size() != knobs_.size()) {
    throw Error("config has " + std::to_string(choices.size()) + " choices but the space has " +
                std::to_string(knobs_.size()) + " knobs");
  }
  uint64_t index = 0;
  for (size_t i = 0; i < knobs_.size(); ++i) {
    check_choice(*knobs_[i], choices[i]);
    index += static_cast<uint64_t>(choices[i]) * strides_[i];
  }
  return index;
}

Config ConfigSpace::random(std::mt19937_64& rng) const {
  std::uniform_int_distribution<uint64_t> pick(0, size_ - 1);
  return get(pick(rng));
}

std::vector<Config> ConfigSpace::neighbours(const Config& c) const {
  const uint64_t base = index_of(c.choices);
  std::vector<Config> result;
  for (size_t i = 0; i < knobs_.size(); ++i) {
    for (int64_t n : knobs_[i]->neighbours(c.choices[i])) {
      Config next;
      next.choices = c.choices;
      next.choices[i] = n;
      // Only digit i changes, so the index moves by the difference times its
      // place value (computed in wrapping unsigned arithmetic).
      next.index = base + (static_cast<uint64_t>(n) - static_cast<uint64_t>(c.choices[i])) *
                              strides_[i];
      result.push_back(std::move(next));
    }
  }
  return result;
}

std::string ConfigSpace::describe(const Config& c) const {
  index_of(c.choices);  // validates c against this space
  std::string text;
  for (size_t i = 0; i < knobs_.size(); ++i) {
    // A knob added later, at its first choice, is left out: the text is the
    // one stored before the knob existed (see add_later_choice).
    if (i >= first_later_ && c.choices[i] == 0) continue;
    if (!text.empty()) text += ' ';
    text += knobs_[i]->name() + "=" + knobs_[i]->describe(c.choices[i]);
  }
  return text;
}

std::vector<std::pair<std::string, std::string>> ConfigSpace::tokens(const std::string& text) const {
  // Tokens are name=value separated by whitespace; a bracketed value may
  // itself contain whitespace ("tile=[4, 8]"), which is ignored.
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  auto skip_space = [&] {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
  };
  skip_space();
  while (pos < text.size()) {
    size_t eq = text.find('=', pos);
    size_t space = pos;
    while (space < text.size() && !std::isspace(static_cast<unsigned char>(text[space]))) ++space;
    if (eq == std::string::npos || eq > space) {
      throw Error("config '" + text + "': expected name=value, got '" +
                  text.substr(pos, space - pos) + "'");
    }
    const std::string name = text.substr(pos, eq - pos);
    pos = eq + 1;
    size_t end = pos;
    if (end < text.size() && text[end] == '[') {
      end = text.find(']', end);
      if (end == std::string::npos) {
        throw Error("config '" + text + "': value of '" + name + "' has no closing ']'");
      }
      ++end;
    } else {
      while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    }
    out.emplace_back(name, strip_spaces(std::string_view(text).substr(pos, end - pos)));
    pos = end;
    skip_space();
  }
  return out;
}

Config ConfigSpace::parse(const std::string& text) const {
  std::vector<int64_t> choices(knobs_.size(), -1);
  for (const auto& [name, value] : tokens(text)) {
    const size_t k = knob_index(name);
    if (choices[k] != -1) throw Error("config '" + text + "': knob '" + name + "' given twice");
    const Knob& knob = *knobs_[k];
    for (int64_t i = 0; i < knob.size() && choices[k] == -1; ++i) {
      if (knob.describe(i) == value) choices[k] = i;
    }
    if (choices[k] == -1) {
      throw Error("config '" + text + "': '" + value + "' is not a choice of knob '" + name +
                  "'; accepted: " + listed_choices(knob));
    }
  }
  for (size_t i = 0; i < knobs_.size(); ++i) {
    if (choices[i] == -1 && i >= first_later_) choices[i] = 0;  // a text from before the knob
    if (choices[i] == -1) {
      throw Error("config '" + text + "': knob '" + knobs_[i]->name() + "' is missing");
    }
  }
  return get(index_of(choices));
}

std::optional<Config> ConfigSpace::parse_resized(const std::string& text) const {
  try {
    std::string fitted;
    for (auto [name, value] : tokens(text)) {
      const Knob& knob = *knobs_[knob_index(name)];
      if (knob.kind() == KnobKind::kSplit && value.size() > 2 && value.front() == '[' && value.back() == ']') {
        const auto& split = static_cast<const SplitKnob&>(knob);
        std::vector<int64_t> factors;
        std::stringstream list(value.substr(1, value.size() - 2));
        for (std::string f; std::getline(list, f, ',');) factors.push_back(std::stoll(f));
        // Factors come from outside (a record of another shape): a product
        // that overflows is no split of this extent.
        int64_t inner = 1;
        for (size_t i = 1; i < factors.size() && inner > 0; ++i) {
          if (factors[i] <= 0 || __builtin_mul_overflow(inner, factors[i], &inner)) inner = 0;
        }
        if (!factors.empty() && inner > 0 && split.extent() % inner == 0) {
          factors[0] = split.extent() / inner;
          value = "[";
          for (size_t i = 0; i < factors.size(); ++i) value += (i ? "," : "") + std::to_string(factors[i]);
          value += "]";
        }
      }
      fitted += (fitted.empty() ? "" : " ") + name + "=" + value;
    }
    return parse(fitted);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

namespace {

template <typename KnobType>
const KnobType& typed_knob(const ConfigSpace& space, const Config& c, const std::string& name,
                           const char* kind, size_t* index) {
  *index = space.knob_index(name);
  const auto* knob = dynamic_cast<const KnobType*>(&space.knob(*index));
  if (knob == nullptr) throw Error("knob '" + name + "' is not a " + kind + " knob");
  if (*index >= c.choices.size()) {
    throw Error("config has no choice for knob '" + name + "' (it has " +
                std::to_string(c.choices.size()) + " choices)");
  }
  check_choice(*knob, c.choices[*index]);
  return *knob;
}

}  // namespace

std::vector<int64_t> ConfigSpace::split(const Config& c, const std::string& knob) const {
  size_t i;
  return typed_knob<SplitKnob>(*this, c, knob, "split", &i).factors(c.choices[i]);
}

std::vector<int> ConfigSpace::order(const Config& c, const std::string& knob) const {
  size_t i;
  return typed_knob<ReorderKnob>(*this, c, knob, "reorder", &i).order(c.choices[i]);
}

int64_t ConfigSpace::value(const Config& c, const std::string& knob) const {
  size_t i;
  return typed_knob<ChoiceKnob>(*this, c, knob, "choice", &i).value(c.choices[i]);
}

}  // namespace ktune
