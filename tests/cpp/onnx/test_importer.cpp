#include <gtest/gtest.h>

#include "onnx/importer.h"
#include "test_graphs.h"

using namespace unirt;
using namespace unirt::testing;

TEST(Importer, ReadsInitializersInputsAndSymbols) {
  auto m = window_pad_model();
  Graph g = import_onnx_bytes(model_bytes(m), "window_pad");
  ASSERT_EQ(g.inputs.size(), 1u);
  const Value& x = g.value(g.inputs[0]);
  EXPECT_EQ(shape_str(x.shape), "[batch,4,height,width]");
  EXPECT_TRUE(g.value(g.find_value("w")).is_const());
  EXPECT_EQ(g.opset, 17);
}

TEST(Importer, UnsupportedOpNamesTheNode) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "4"});
  add_node(g, "NonMaxSuppression", {"x"}, {"y"}, "nms_1");
  g->add_output()->set_name("y");
  try {
    import_onnx_bytes(model_bytes(m), "m");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("NonMaxSuppression"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nms_1"), std::string::npos) << msg;
  }
}

TEST(Importer, UnknownAttributeIsAnError) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1", "4"});
  add_int(add_node(g, "Relu", {"x"}, {"y"}, "r"), "alpha", 3);
  g->add_output()->set_name("y");
  EXPECT_THROW(import_onnx_bytes(model_bytes(m), "m"), Error);
}

TEST(Importer, MalformedBytesAreRejected) {
  EXPECT_THROW(import_onnx_bytes("this is not protobuf \xff\xff\xff", "junk"), Error);
  EXPECT_THROW(import_onnx_bytes("", "empty"), Error);
  auto m = window_pad_model();
  std::string b = model_bytes(m);
  EXPECT_THROW(import_onnx_bytes(b.substr(0, b.size() / 2), "truncated"), Error);
}

TEST(Importer, UndefinedInputNamesTheTensor) {
  onnx::ModelProto m;
  auto* g = m.mutable_graph();
  add_input(g, "x", {"1"});
  add_node(g, "Add", {"x", "ghost"}, {"y"}, "add");
  g->add_output()->set_name("y");
  try {
    import_onnx_bytes(model_bytes(m), "m");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ghost"), std::string::npos);
  }
}
