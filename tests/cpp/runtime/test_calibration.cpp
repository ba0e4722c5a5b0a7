// Calibration: the |x| histogram (range doubling, non-finite values), the three amax choices on
// distributions whose answer is known, and the calibration cache's text form.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include "ir/graph.h"
#include "runtime/calibration.h"

using namespace unirt;

namespace {

std::vector<float> normal(size_t n, uint32_t seed, float sigma = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

TEST(Calibration, HistogramGrowsWithoutLosingCounts) {
  AbsHistogram h(2048);
  std::vector<float> a = {0.25f, -0.5f, 1.0f, 0.f}, b = {3.5f, -2.f, NAN, INFINITY, 0.125f};
  h.add(a.data(), a.size());
  EXPECT_DOUBLE_EQ(h.range(), 1.0);
  h.add(b.data(), b.size());
  EXPECT_DOUBLE_EQ(h.range(), 4.0);  // doubled twice
  EXPECT_DOUBLE_EQ(h.amax(), 3.5);
  EXPECT_DOUBLE_EQ(h.total(), 7);
  EXPECT_EQ(h.non_finite(), 2);
  double sum = 0;
  for (double c : h.counts()) sum += c;
  EXPECT_DOUBLE_EQ(sum, 7);
  // 0.25 and 0.125 sit where a direct histogram over [0, 4) puts them.
  EXPECT_EQ(h.counts()[128], 1);  // 0.25 * 2048 / 4
  EXPECT_EQ(h.counts()[64], 1);   // 0.125 * 2048 / 4
  EXPECT_EQ(h.counts()[1792], 1); // 3.5
}

TEST(Calibration, AllZerosGiveZeroAmax) {
  AbsHistogram h;
  std::vector<float> z(100, 0.f);
  h.add(z.data(), z.size());
  for (Calibrator c : {Calibrator::Entropy, Calibrator::Percentile, Calibrator::MinMax}) EXPECT_EQ(choose_amax(h, c), 0.0);
}

TEST(Calibration, MinMaxAndPercentileOfKnownDistributions) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> v(1 << 20);
  for (auto& x : v) x = u(rng);
  AbsHistogram h;
  h.add(v.data(), v.size() / 2);
  h.add(v.data() + v.size() / 2, v.size() / 2);
  const double width = h.range() / h.bins();
  EXPECT_DOUBLE_EQ(choose_amax(h, Calibrator::MinMax), *std::max_element(v.begin(), v.end()));
  EXPECT_NEAR(percentile_amax(h, 99.0), 0.99, 2 * width + 1e-3);
  EXPECT_NEAR(percentile_amax(h, 50.0), 0.50, 2 * width + 1e-3);
  EXPECT_NEAR(percentile_amax(h, 100.0), h.amax(), width);
  EXPECT_THROW(percentile_amax(h, 0.0), Error);
  EXPECT_THROW(percentile_amax(h, 101.0), Error);
}

// A Gaussian with a few far outliers: minmax follows the outliers; entropy clips them and keeps
// the bulk (a few sigma); on uniform data, where nothing should be clipped, entropy keeps almost
// the whole range.
TEST(Calibration, EntropyClipsOutliersAndKeepsUniformRange) {
  std::vector<float> g = normal(1 << 20, 7);
  for (int i = 0; i < 20; ++i) g[i * 1000] = 60.f;
  AbsHistogram h;
  h.add(g.data(), g.size());
  const double mm = choose_amax(h, Calibrator::MinMax), ent = choose_amax(h, Calibrator::Entropy),
               pct = choose_amax(h, Calibrator::Percentile, 99.99);
  std::printf("gaussian + outliers: minmax %.3f entropy %.3f percentile(99.99) %.3f\n", mm, ent, pct);
  EXPECT_EQ(mm, 60.0);
  EXPECT_GT(ent, 2.5);
  EXPECT_LT(ent, 10.0);
  EXPECT_GT(pct, 3.0);
  EXPECT_LT(pct, 5.0);

  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(1 << 20);
  for (auto& x : v) x = u(rng);
  AbsHistogram hu;
  hu.add(v.data(), v.size());
  const double eu = entropy_amax(hu);
  std::printf("uniform: entropy %.4f of %.4f\n", eu, hu.amax());
  EXPECT_GT(eu, 0.9 * hu.amax());
}

TEST(Calibration, CacheRoundTripsExactly) {
  CalibrationCache c;
  c.calibrator = Calibrator::Percentile;
  c.percentile = 99.9;
  c.amax = {{"/blocks1.0/conv/Conv_output_0", 3.14159274f}, {"input", 2.64f}, {"a name with spaces", 1e-7f}};
  const std::string text = c.to_text();
  const CalibrationCache d = CalibrationCache::from_text(text, "cache.txt");
  EXPECT_EQ(d.calibrator, Calibrator::Percentile);
  EXPECT_EQ(d.percentile, 99.9);
  EXPECT_EQ(d.amax, c.amax);  // bit-exact: hex floats
  const std::string path = ::testing::TempDir() + "unirt_calib_cache.txt";
  c.save(path);
  EXPECT_EQ(CalibrationCache::load(path).amax, c.amax);
  std::remove(path.c_str());
}

TEST(Calibration, BadCachesAreNamedErrors) {
  auto message = [](const std::string& text) {
    try {
      CalibrationCache::from_text(text, "c.txt");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("").find("c.txt:0: empty file"), std::string::npos) << message("");
  EXPECT_NE(message("TRT-8601-EntropyCalibration2\n").find("not a calibration cache"), std::string::npos);
  EXPECT_NE(message("unirt-calibration 2 entropy\n").find("version 2"), std::string::npos);
  EXPECT_NE(message("unirt-calibration 1 kl\n").find("expected entropy, percentile or minmax"), std::string::npos);
  EXPECT_NE(message("unirt-calibration 1 percentile\n").find("percentile is missing"), std::string::npos);
  EXPECT_NE(message("unirt-calibration 1 minmax\n0x1p+0 a\nnan b\n").find("c.txt:3: amax 'nan'"), std::string::npos);
  EXPECT_NE(message("unirt-calibration 1 minmax\n0x1p+0 a\n0x1p+1 a\n").find("tensor 'a' twice"), std::string::npos);
  EXPECT_NE(message("unirt-calibration 1 minmax\n0x1p+0\n").find("c.txt:2: expected"), std::string::npos);
  EXPECT_THROW(CalibrationCache::load("/nonexistent/cache.txt"), Error);
  EXPECT_THROW(parse_calibrator("kl"), Error);
}
