#include "cost_model/xgb_model.h"

#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>
#include <sstream>

#include "schedule_space/error.h"

namespace ktune::cost_model {
namespace {

void check(int rc, const char* what) {
  if (rc != 0) throw Error(std::string("XGBoost ") + what + " failed: " + XGBGetLastError());
}

// A DMatrix of x's rows, freed on scope exit.
class DMatrix {
 public:
  DMatrix(const Matrix& x, const char* who) {
    if (x.empty()) throw Error(std::string("cost model ") + who + ": no rows");
    const size_t cols = x.front().size();
    if (cols == 0) throw Error(std::string("cost model ") + who + ": rows have no features");
    std::vector<float> flat;
    flat.reserve(x.size() * cols);
    for (const auto& row : x) {
      if (row.size() != cols) {
        throw Error(std::string("cost model ") + who + ": rows of " + std::to_string(row.size()) +
                    " and " + std::to_string(cols) + " features");
      }
      flat.insert(flat.end(), row.begin(), row.end());
    }
    rows_ = x.size();
    check(XGDMatrixCreateFromMat(flat.data(), rows_, cols, NAN, &handle_), "XGDMatrixCreateFromMat");
  }
  ~DMatrix() {
    if (handle_) XGDMatrixFree(handle_);
  }
  DMatrix(const DMatrix&) = delete;
  DMatrix& operator=(const DMatrix&) = delete;
  DMatrixHandle get() const { return handle_; }
  size_t rows() const { return rows_; }

  void set_floats(const char* field, const std::vector<float>& v) {
    if (v.empty()) return;
    if (v.size() != rows_) {
      throw Error(std::string("cost model: ") + field + " has " + std::to_string(v.size()) + " values for " +
                  std::to_string(rows_) + " rows");
    }
    check(XGDMatrixSetFloatInfo(handle_, field, v.data(), v.size()), "XGDMatrixSetFloatInfo");
  }

 private:
  DMatrixHandle handle_ = nullptr;
  size_t rows_ = 0;
};

std::string number(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

std::vector<double> ranks(const std::vector<float>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double mean = (static_cast<double>(i) + static_cast<double>(j)) / 2;
    for (size_t k = i; k <= j; ++k) r[order[k]] = mean;
    i = j + 1;
  }
  return r;
}

}  // namespace

struct XgbModel::Impl {
  BoosterHandle booster = nullptr;
  // XGBoosterPredict writes the booster's prediction cache: one thread at a
  // time (a transfer base model is shared by tuners on several threads).
  std::mutex predict_mu;
  ~Impl() {
    if (booster) XGBoosterFree(booster);
  }
};

XgbModel::XgbModel(XgbOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  if (options_.objective != "rank:pairwise" && options_.objective != "reg:squarederror") {
    throw Error("cost model: unknown objective '" + options_.objective +
                "': accepted objectives are rank:pairwise, reg:squarederror");
  }
  if (options_.rounds < 1) throw Error("cost model: rounds must be >= 1");
}

XgbModel::~XgbModel() = default;
XgbModel::XgbModel(XgbModel&&) noexcept = default;
XgbModel& XgbModel::operator=(XgbModel&&) noexcept = default;

bool XgbModel::trained() const { return impl_ && impl_->booster; }

void XgbModel::fit(const Matrix& x, const std::vector<float>& y, const std::vector<float>& base_margin,
                   const std::vector<unsigned>& groups) {
  DMatrix train(x, "training");
  if (y.size() != x.size()) {
    throw Error("cost model: " + std::to_string(y.size()) + " labels for " + std::to_string(x.size()) + " rows");
  }
  train.set_floats("label", y);
  train.set_floats("base_margin", base_margin);
  if (options_.objective == "rank:pairwise") {
    std::vector<unsigned> sizes = groups;
    if (sizes.empty()) sizes = {static_cast<unsigned>(x.size())};  // one query: the task
    size_t total = 0;
    for (unsigned g : sizes) total += g;
    if (total != x.size()) {
      throw Error("cost model: groups cover " + std::to_string(total) + " of " + std::to_string(x.size()) + " rows");
    }
    check(XGDMatrixSetUIntInfo(train.get(), "group", sizes.data(), sizes.size()), "XGDMatrixSetUIntInfo");
  }
  auto next = std::make_unique<Impl>();
  const DMatrixHandle dmats[] = {train.get()};
  check(XGBoosterCreate(dmats, 1, &next->booster), "XGBoosterCreate");
  const std::vector<std::pair<std::string, std::string>> params = {
      {"objective", options_.objective},
      {"max_depth", std::to_string(options_.max_depth)},
      {"eta", number(options_.eta)},
      {"min_child_weight", number(options_.min_child_weight)},
      {"subsample", number(options_.subsample)},
      {"colsample_bytree", number(options_.colsample_bytree)},
      {"lambda", number(options_.lambda)},
      {"seed", std::to_string(options_.seed)},
      {"nthread", std::to_string(options_.threads)},
      {"tree_method", "exact"},
      {"verbosity", "0"},
  };
  for (const auto& [k, v] : params) check(XGBoosterSetParam(next->booster, k.c_str(), v.c_str()), "XGBoosterSetParam");
  for (int i = 0; i < options_.rounds; ++i) {
    check(XGBoosterUpdateOneIter(next->booster, i, train.get()), "XGBoosterUpdateOneIter");
  }
  impl_ = std::move(next);
}

std::vector<float> XgbModel::predict(const Matrix& x, const std::vector<float>& base_margin) const {
  if (!trained()) throw Error("cost model: predict before fit");
  DMatrix data(x, "prediction");
  data.set_floats("base_margin", base_margin);
  bst_ulong length = 0;
  const float* out = nullptr;
  std::lock_guard lock(impl_->predict_mu);
  check(XGBoosterPredict(impl_->booster, data.get(), 0, 0, 0, &length, &out), "XGBoosterPredict");
  return std::vector<float>(out, out + length);
}

double spearman(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.size() < 2) throw Error("spearman: needs two series of equal length >= 2");
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double mean = (n - 1) / 2;
  double cov = 0, va = 0, vb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    cov += (ra[i] - mean) * (rb[i] - mean);
    va += (ra[i] - mean) * (ra[i] - mean);
    vb += (rb[i] - mean) * (rb[i] - mean);
  }
  return va > 0 && vb > 0 ? cov / std::sqrt(va * vb) : 0;
}

}  // namespace ktune::cost_model
