#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "ir/graph.h"
#include "ir/half.h"

using namespace unirt;

// Every half: finite values and infinities survive half -> float -> half exactly; a NaN stays a
// NaN of the same sign (as the quiet NaN 0x7e00).
TEST(Half, EveryHalfRoundTripsAndNanStaysNan) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    const bool nan = ((h >> 10) & 31) == 31 && (h & 0x3ff) != 0;
    if (nan) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_EQ(float_to_half(f), (h & 0x8000u) | 0x7e00u) << h;
    } else {
      ASSERT_EQ(float_to_half(f), h) << h;
    }
  }
}

TEST(Half, RoundsToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), 0x3c00);  // halfway, even stays
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048), 0x3c02);  // halfway, odd rounds up
  EXPECT_EQ(float_to_half(65504.f), 0x7bff);
  EXPECT_EQ(float_to_half(65519.f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.f), 0x7c00);  // ties to even: infinity
  EXPECT_EQ(float_to_half(std::ldexp(1.f, -25)), 0x0000);  // tie to the even subnormal 0
  EXPECT_EQ(float_to_half(std::ldexp(3.f, -25)), 0x0002);
  EXPECT_EQ(float_to_half(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(float_to_half(-std::nanf("")), 0xfe00);
  EXPECT_EQ(float_to_half(-0.f), 0x8000);
}

TEST(Half, TensorDataReadsFloat16) {
  TensorData t;
  t.dtype = DType::Float16;
  t.shape = {3};
  const uint16_t h[3] = {0x3c00, 0xc000, 0x0001};
  t.bytes.resize(6);
  std::memcpy(t.bytes.data(), h, 6);
  const auto f = t.to_float();
  EXPECT_EQ(f[0], 1.f);
  EXPECT_EQ(f[1], -2.f);
  EXPECT_EQ(f[2], std::ldexp(1.f, -24));
}
