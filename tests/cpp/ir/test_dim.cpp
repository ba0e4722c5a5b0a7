#include <gtest/gtest.h>

#include "ir/dim.h"

using unirt::Dim;

TEST(Dim, FoldsConstants) {
  EXPECT_EQ((Dim(3) + Dim(4)).value(), 7);
  EXPECT_EQ(unirt::floordiv(Dim(-7), Dim(2)).value(), -4);
  EXPECT_EQ(unirt::ceildiv(Dim(15), Dim(14)).value(), 2);
}

TEST(Dim, SymbolicConvOutputEqualsQuarter) {
  Dim h = Dim::symbol("H");
  Dim conv = unirt::floordiv(h - 4, Dim(4)) + 1;  // k=4, s=4, no padding
  EXPECT_TRUE(conv.equals(unirt::floordiv(h, Dim(4))));
  EXPECT_FALSE(conv.equals(unirt::floordiv(h, Dim(2))));
  EXPECT_EQ(conv.eval({{"H", 224}}), 56);
}

TEST(Dim, WindowPadAmountStaysSymbolic) {
  Dim h = Dim::symbol("H");
  Dim pad = unirt::mod(Dim(14) - unirt::mod(h, Dim(14)), Dim(14));
  EXPECT_FALSE(pad.is_const());
  EXPECT_EQ(pad.eval({{"H", 50}}), 6);
  EXPECT_EQ(pad.eval({{"H", 56}}), 0);
  EXPECT_EQ(pad.substitute({{"H", 50}}).value(), 6);
}

TEST(Dim, UnboundSymbolNamesIt) {
  try {
    Dim::symbol("batch").eval({});
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("batch"), std::string::npos);
  }
}
