// Binary and unary element-wise kernels, Cast and Where against scalar references.
#include <functional>

#include "cpu/cpu_test_util.h"
#include "cpu/cpu_util.h"
#include "ir/half.h"

using namespace unirt;
using namespace unirt::cputest;

namespace cpu_ns = unirt::cpu;

namespace {

const std::vector<std::vector<std::vector<int64_t>>> kBroadcasts = {
    {{2, 3, 4}, {2, 3, 4}, {2, 3, 4}},              // same shape
    {{2, 3, 4}, {}, {2, 3, 4}},                     // scalar
    {{2, 3, 4}, {4}, {2, 3, 4}},                    // bias over the last dim
    {{2, 5, 3, 3}, {1, 5, 1, 1}, {2, 5, 3, 3}},     // per channel
    {{1}, {2, 3}, {2, 3}},                          // scalar on the left
    {{3, 1, 5}, {1, 4, 1}, {3, 4, 5}},              // both broadcast
    {{2, 1, 4}, {3, 1}, {2, 3, 4}},                 // rank differs
    {{300, 200}, {200}, {300, 200}},                // large: the parallel path
};

void check_binary_f(const std::string& op, const std::function<double(double, double)>& ref, float lo = -2.f, float hi = 2.f) {
  for (const auto& c : kBroadcasts) {
    Tensor a = randf(c[0], 21, lo, hi), b = randf(c[1], 22, lo, hi), y = out_f(c[2]);
    run(node(op, op + "_node"), {&a, &b}, {&y});
    std::vector<double> want(static_cast<size_t>(y.numel()));
    for (int64_t i = 0; i < y.numel(); ++i) want[i] = ref(a.f(bcast_index(i, c[2], c[0])), b.f(bcast_index(i, c[2], c[1])));
    SCOPED_TRACE(op + " " + std::to_string(c[0].size()) + "/" + std::to_string(c[1].size()));
    expect_near_all(y, want, 1e-5, 1e-5);
  }
}

template <typename T>
void check_binary_int(const std::string& op, DType dt, const std::function<T(T, T)>& ref) {
  std::vector<int64_t> as = {2, 3, 4}, bs = {3, 1}, os = {2, 3, 4};
  std::vector<T> av(24), bv(3);
  for (int i = 0; i < 24; ++i) av[i] = static_cast<T>(i * 7 % 19 - 9);
  bv = {static_cast<T>(4), static_cast<T>(-3), static_cast<T>(5)};
  Tensor a = values(dt, as, av), b = values(dt, bs, bv), y = empty(dt, os);
  run(node(op, op + "_int"), {&a, &b}, {&y});
  for (int64_t i = 0; i < 24; ++i) EXPECT_EQ(y.as<T>()[i], ref(av[bcast_index(i, os, as)], bv[bcast_index(i, os, bs)])) << op << " " << i;
}

int64_t pymod(int64_t a, int64_t b) {
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

}  // namespace

TEST(CpuBinary, Add) { check_binary_f("Add", [](double a, double b) { return a + b; }); }
TEST(CpuBinary, Sub) { check_binary_f("Sub", [](double a, double b) { return a - b; }); }
TEST(CpuBinary, Mul) { check_binary_f("Mul", [](double a, double b) { return a * b; }); }
TEST(CpuBinary, Div) { check_binary_f("Div", [](double a, double b) { return a / b; }, 0.5f, 3.f); }
TEST(CpuBinary, Pow) { check_binary_f("Pow", [](double a, double b) { return std::pow(a, b); }, 0.1f, 2.f); }
TEST(CpuBinary, MinMaxTwoInputs) {
  check_binary_f("Min", [](double a, double b) { return std::min(a, b); });
  check_binary_f("Max", [](double a, double b) { return std::max(a, b); });
}
TEST(CpuBinary, MinMaxVariadic) {
  Tensor a = randf({2, 3}, 1), b = randf({3}, 2), c = randf({2, 1}, 3), y = out_f({2, 3});
  run(node("Max", "max3"), {&a, &b, &c}, {&y});
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_FLOAT_EQ(y.f(i), std::max({a.f(i), b.f(i % 3), c.f(i / 3)}));
  Tensor one = out_f({2, 3});
  run(node("Min", "min1"), {&a}, {&one});
  for (int64_t i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(one.f(i), a.f(i));
}
TEST(CpuBinary, ModFloatFmod) {
  Node n = node("Mod", "fmod");
  n.attrs["fmod"] = int64_t{1};
  Tensor a = randf({4, 5}, 1, -5, 5), b = randf({5}, 2, 0.5, 2), y = out_f({4, 5});
  run(n, {&a, &b}, {&y});
  for (int64_t i = 0; i < 20; ++i) EXPECT_FLOAT_EQ(y.f(i), std::fmod(a.f(i), b.f(i % 5)));
}
TEST(CpuBinary, IntegerArithmetic) {
  check_binary_int<int64_t>("Add", DType::Int64, [](int64_t a, int64_t b) { return a + b; });
  check_binary_int<int64_t>("Sub", DType::Int64, [](int64_t a, int64_t b) { return a - b; });
  check_binary_int<int64_t>("Mul", DType::Int64, [](int64_t a, int64_t b) { return a * b; });
  check_binary_int<int64_t>("Div", DType::Int64, [](int64_t a, int64_t b) { return a / b; });
  check_binary_int<int64_t>("Mod", DType::Int64, pymod);
  check_binary_int<int64_t>("Min", DType::Int64, [](int64_t a, int64_t b) { return std::min(a, b); });
  check_binary_int<int64_t>("Max", DType::Int64, [](int64_t a, int64_t b) { return std::max(a, b); });
  check_binary_int<int32_t>("Add", DType::Int32, [](int32_t a, int32_t b) { return a + b; });
  check_binary_int<int32_t>("Div", DType::Int32, [](int32_t a, int32_t b) { return a / b; });
  check_binary_int<int32_t>("Mod", DType::Int32, [](int32_t a, int32_t b) { return static_cast<int32_t>(pymod(a, b)); });
}
TEST(CpuBinary, Comparisons) {
  for (const std::string op : {"Equal", "Less", "Greater"}) {
    Tensor a = floats({2, 3}, {1, 2, 3, 4, 5, 6}), b = floats({3}, {2, 2, 5}), y = empty(DType::Bool, {2, 3});
    run(node(op, op), {&a, &b}, {&y});
    for (int64_t i = 0; i < 6; ++i) {
      const float x = a.f(i), z = b.f(i % 3);
      const bool want = op == "Equal" ? x == z : (op == "Less" ? x < z : x > z);
      EXPECT_EQ(y.as<uint8_t>()[i], want ? 1 : 0) << op << " " << i;
    }
    Tensor ai = i64({1, 5, 7}), bi = i64({5}, {1}), yi = empty(DType::Bool, {3});
    run(node(op, op), {&ai, &bi}, {&yi});
    for (int64_t i = 0; i < 3; ++i) {
      const int64_t x = ai.as<int64_t>()[i];
      EXPECT_EQ(yi.as<uint8_t>()[i], op == "Equal" ? x == 5 : (op == "Less" ? x < 5 : x > 5));
    }
  }
}
TEST(CpuBinary, Logic) {
  Tensor a = values<uint8_t>(DType::Bool, {4}, {0, 0, 1, 1}), b = values<uint8_t>(DType::Bool, {4}, {0, 1, 0, 1});
  for (const std::string op : {"And", "Or", "Xor"}) {
    Tensor y = empty(DType::Bool, {4});
    run(node(op, op), {&a, &b}, {&y});
    for (int i = 0; i < 4; ++i) {
      const bool x = a.as<uint8_t>()[i], z = b.as<uint8_t>()[i];
      EXPECT_EQ(y.as<uint8_t>()[i], op == "And" ? (x && z) : op == "Or" ? (x || z) : (x != z)) << op;
    }
  }
}
TEST(CpuBinary, PowMixedTypes) {
  Tensor a = floats({3}, {1.5f, 2.f, 3.f}), e = i64({2, 3, 0}), y = out_f({3});
  run(node("Pow", "pow"), {&a, &e}, {&y});
  expect_near_all(y, {2.25, 8.0, 1.0});
}
TEST(CpuBinary, ErrorsNameTheNode) {
  Tensor a = randf({2, 3}, 1), b = randf({4}, 2), y = out_f({2, 3});
  expect_error(node("Add", "blocks.0/add"), {&a, &b}, {&y}, "broadcast");
  Tensor i = i64({1, 2, 3}), z = i64({0}, {1}), yi = empty(DType::Int64, {3});
  expect_error(node("Div", "shape/div"), {&i, &z}, {&yi}, "division by zero");
  Tensor f = randf({3}, 3);
  expect_error(node("Mul", "mixed"), {&i, &f}, {&yi}, "types");
  Tensor s = empty(DType::Float16, {3}), ys = empty(DType::Float16, {3});
  expect_error(node("Sub", "half_sub"), {&s, &s}, {&ys}, "float16");
}

namespace {
void check_unary(const std::string& op, const std::function<double(double)>& ref, float lo = -3.f, float hi = 3.f,
                 Node n = Node()) {
  if (n.op_type.empty()) n = node(op, op + "_node");
  for (int64_t size : {7, 50000}) {  // small, and large enough for the parallel loop
    Tensor x = randf({size}, 31, lo, hi), y = out_f({size});
    run(n, {&x}, {&y});
    std::vector<double> want(static_cast<size_t>(size));
    for (int64_t i = 0; i < size; ++i) want[i] = ref(x.f(i));
    SCOPED_TRACE(op);
    expect_near_all(y, want, 1e-6, 1e-5);
  }
}
}  // namespace

TEST(CpuUnary, Sqrt) { check_unary("Sqrt", [](double x) { return std::sqrt(x); }, 0.f, 9.f); }
TEST(CpuUnary, Erf) { check_unary("Erf", [](double x) { return std::erf(x); }); }
TEST(CpuUnary, Relu) { check_unary("Relu", [](double x) { return x > 0 ? x : 0; }); }
TEST(CpuUnary, Sigmoid) { check_unary("Sigmoid", [](double x) { return 1 / (1 + std::exp(-x)); }, -30.f, 30.f); }
TEST(CpuUnary, Tanh) { check_unary("Tanh", [](double x) { return std::tanh(x); }); }
TEST(CpuUnary, Exp) { check_unary("Exp", [](double x) { return std::exp(x); }); }
TEST(CpuUnary, Log) { check_unary("Log", [](double x) { return std::log(x); }, 0.01f, 10.f); }
TEST(CpuUnary, Neg) { check_unary("Neg", [](double x) { return -x; }); }
TEST(CpuUnary, Abs) { check_unary("Abs", [](double x) { return std::fabs(x); }); }
TEST(CpuUnary, Reciprocal) { check_unary("Reciprocal", [](double x) { return 1 / x; }, 0.1f, 5.f); }
TEST(CpuUnary, Floor) { check_unary("Floor", [](double x) { return std::floor(x); }); }
TEST(CpuUnary, Ceil) { check_unary("Ceil", [](double x) { return std::ceil(x); }); }
TEST(CpuUnary, GeluExactAndTanh) {
  check_unary("Gelu", [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); });
  Node n = node("Gelu", "gelu_tanh");
  n.attrs["approximate"] = std::string("tanh");
  check_unary("Gelu", [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); },
              -3.f, 3.f, n);
}
TEST(CpuUnary, NegAbsOnIntegers) {
  Tensor x = i64({-3, 0, 5}), y = empty(DType::Int64, {3});
  run(node("Neg", "neg"), {&x}, {&y});
  EXPECT_EQ(std::vector<int64_t>(y.as<int64_t>(), y.as<int64_t>() + 3), (std::vector<int64_t>{3, 0, -5}));
  run(node("Abs", "abs"), {&x}, {&y});
  EXPECT_EQ(std::vector<int64_t>(y.as<int64_t>(), y.as<int64_t>() + 3), (std::vector<int64_t>{3, 0, 5}));
}
TEST(CpuUnary, Not) {
  Tensor x = values<uint8_t>(DType::Bool, {3}, {0, 1, 0}), y = empty(DType::Bool, {3});
  run(node("Not", "not"), {&x}, {&y});
  EXPECT_EQ(y.as<uint8_t>()[0], 1);
  EXPECT_EQ(y.as<uint8_t>()[1], 0);
}
TEST(CpuUnary, ClipInputsAndAttributes) {
  Tensor x = randf({100}, 5), lo = floats({}, {-0.5f}), hi = floats({}, {0.7f}), nl = none(), y = out_f({100});
  run(node("Clip", "clip"), {&x, &lo, &hi}, {&y}, 13);
  for (int i = 0; i < 100; ++i) EXPECT_FLOAT_EQ(y.f(i), std::min(std::max(x.f(i), -0.5f), 0.7f));
  run(node("Clip", "clip"), {&x, &nl, &hi}, {&y}, 13);
  for (int i = 0; i < 100; ++i) EXPECT_FLOAT_EQ(y.f(i), std::min(x.f(i), 0.7f));
  Node old = node("Clip", "clip6");
  old.attrs["min"] = 0.f;
  old.attrs["max"] = 6.f;
  Tensor big = randf({100}, 6, -10, 10);
  run(old, {&big}, {&y}, 6);
  for (int i = 0; i < 100; ++i) EXPECT_FLOAT_EQ(y.f(i), std::min(std::max(big.f(i), 0.f), 6.f));
  Tensor xi = i64({-5, 3, 9}), li = i64({0}, {}), hi2 = i64({4}, {}), yi = empty(DType::Int64, {3});
  run(node("Clip", "clip_int"), {&xi, &li, &hi2}, {&yi}, 13);
  EXPECT_EQ(yi.as<int64_t>()[0], 0);
  EXPECT_EQ(yi.as<int64_t>()[2], 4);
}
TEST(CpuUnary, IdentityAndDropout) {
  Tensor x = i64({1, 2, 3}), y = empty(DType::Int64, {3});
  run(node("Identity", "id"), {&x}, {&y});
  EXPECT_EQ(y.as<int64_t>()[2], 3);
  Tensor f = randf({2, 3}, 1), g = out_f({2, 3}), mask = empty(DType::Bool, {2, 3});
  run(node("Dropout", "drop"), {&f}, {&g, &mask});
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(g.f(i), f.f(i));
    EXPECT_EQ(mask.as<uint8_t>()[i], 1);
  }
  Tensor ratio = floats({}, {0.5f}), train = values<uint8_t>(DType::Bool, {}, {1});
  expect_error(node("Dropout", "train_drop"), {&f, &ratio, &train}, {&g}, "training");
}
TEST(CpuUnary, WrongShapeNamesTheNode) {
  Tensor x = randf({2, 3}, 1), y = out_f({3, 2});
  expect_error(node("Relu", "act/relu"), {&x}, {&y}, "shape");
  Tensor i = i64({1, 2});
  Tensor yi = empty(DType::Int64, {2});
  expect_error(node("Exp", "int_exp"), {&i}, {&yi}, "int64");
}

TEST(CpuCast, BetweenTypes) {
  Tensor f = floats({6}, {-2.7f, -0.5f, 0.f, 0.5f, 3.9f, 200.f});
  Tensor to_i = empty(DType::Int64, {6}), to_i8 = empty(DType::Int8, {6}), to_b = empty(DType::Bool, {6}), to_d = empty(DType::Float64, {6});
  Node n = node("Cast", "cast");
  run(n, {&f}, {&to_i});
  EXPECT_EQ(std::vector<int64_t>(to_i.as<int64_t>(), to_i.as<int64_t>() + 6), (std::vector<int64_t>{-2, 0, 0, 0, 3, 200}));
  run(n, {&f}, {&to_i8});
  EXPECT_EQ(to_i8.as<int8_t>()[4], 3);
  run(n, {&f}, {&to_b});
  EXPECT_EQ(std::vector<uint8_t>(to_b.as<uint8_t>(), to_b.as<uint8_t>() + 6), (std::vector<uint8_t>{1, 1, 0, 1, 1, 1}));
  run(n, {&f}, {&to_d});
  EXPECT_EQ(to_d.as<double>()[0], static_cast<double>(-2.7f));
  Tensor i = i64({-1, 7}), back = out_f({2}), i32 = empty(DType::Int32, {2}), u8 = empty(DType::Uint8, {2});
  run(n, {&i}, {&back});
  EXPECT_EQ(back.f(0), -1.f);
  run(n, {&i}, {&i32});
  EXPECT_EQ(i32.as<int32_t>()[1], 7);
  run(n, {&i32}, {&u8});
  EXPECT_EQ(u8.as<uint8_t>()[1], 7);
}
TEST(CpuCast, Float16RoundTripAndRounding) {
  // Every finite half survives half -> float -> half exactly.
  for (uint32_t h = 0; h < 65536; ++h) {
    if (((h >> 10) & 31) == 31) continue;
    ASSERT_EQ(float_to_half(half_to_float(static_cast<uint16_t>(h))), h) << h;
  }
  // Ties go to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(float_to_half(1.f + std::ldexp(1.f, -11)), 0x3c00);
  EXPECT_EQ(float_to_half(1.f + 3 * std::ldexp(1.f, -11)), 0x3c02);
  EXPECT_EQ(float_to_half(65520.f), 0x7c00);  // rounds to infinity
  EXPECT_EQ(float_to_half(65519.f), 0x7bff);
  EXPECT_EQ(float_to_half(std::ldexp(1.f, -25)), 0x0000);  // tie to even subnormal 0
  EXPECT_EQ(float_to_half(std::ldexp(3.f, -25)), 0x0002);
  // Through the kernel, both directions.
  Tensor f = floats({3}, {0.1f, -2.5f, 1e-6f}), h = empty(DType::Float16, {3}), back = out_f({3});
  run(node("Cast", "to_half"), {&f}, {&h});
  run(node("Cast", "to_float"), {&h}, {&back});
  expect_near_all(back, {0.1, -2.5, 1e-6}, 1e-7, 1e-3);
}

TEST(CpuWhere, BroadcastAnyElementType) {
  Tensor c = values<uint8_t>(DType::Bool, {2, 1}, {1, 0}), x = i64({1, 2, 3}), y = i64({-7}, {1}), o = empty(DType::Int64, {2, 3});
  run(node("Where", "where"), {&c, &x, &y}, {&o});
  EXPECT_EQ(std::vector<int64_t>(o.as<int64_t>(), o.as<int64_t>() + 6), (std::vector<int64_t>{1, 2, 3, -7, -7, -7}));
  Tensor cf = values<uint8_t>(DType::Bool, {3}, {0, 1, 0}), xf = randf({2, 3}, 1), yf = randf({2, 3}, 2), of = out_f({2, 3});
  run(node("Where", "where_f"), {&cf, &xf, &yf}, {&of});
  for (int i = 0; i < 6; ++i) EXPECT_EQ(of.f(i), (i % 3 == 1) ? xf.f(i) : yf.f(i));
  Tensor bad = randf({4}, 3);
  expect_error(node("Where", "mask/where"), {&cf, &xf, &bad}, {&of}, "broadcast");
}
