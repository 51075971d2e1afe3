// The backward engine: accumulation, hooks, retain_graph, saved-tensor checks, deep graphs.
#include <catch2/catch.hpp>

#include <cstddef>
#include <string>
#include <vector>

#include "dtrain.h"

using namespace dtrain;
using Catch::Contains;

TEST_CASE("backward of a scalar computes hand-derived gradients") {
  // f(x, y) = sum(x * y + x^2) -> df/dx = y + 2x, df/dy = x
  Tensor x = from_vector<double>({1, 2, 3}).set_requires_grad();
  Tensor y = from_vector<double>({4, 5, 6}).set_requires_grad();
  Tensor f = (x * y + x * x).sum();
  REQUIRE(f.item() == 4 + 10 + 18 + 1 + 4 + 9);
  REQUIRE(f.grad_fn() != nullptr);
  f.backward();
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{6, 9, 12});
  REQUIRE(y.grad().to_vector<double>() == std::vector<double>{1, 2, 3});
}

TEST_CASE("gradients accumulate across backward calls until reset") {
  Tensor w = from_vector<double>({1, -1}).set_requires_grad();
  (w * 3.0).sum().backward();
  (w * 3.0).sum().backward();
  REQUIRE(w.grad().to_vector<double>() == std::vector<double>{6, 6});
  w.set_grad(Tensor());
  (w * 2.0).sum().backward();
  REQUIRE(w.grad().to_vector<double>() == std::vector<double>{2, 2});
}

TEST_CASE("a gradient shared by two inputs is not aliased in their .grad()") {
  Tensor a = ones({2}, {.dtype = kFloat64}).set_requires_grad();
  Tensor b = ones({2}, {.dtype = kFloat64}).set_requires_grad();
  (a + b).sum().backward();
  {
    NoGradGuard no_grad;
    a.grad().add_(ones({2}, {.dtype = kFloat64}));
  }
  REQUIRE(b.grad().to_vector<double>() == std::vector<double>{1, 1});
  REQUIRE(a.grad().to_vector<double>() == std::vector<double>{2, 2});
}

TEST_CASE("backward with an explicit gradient for a non-scalar output") {
  Tensor x = from_vector<double>({1, 2}).set_requires_grad();
  Tensor y = x * x;
  y.backward(from_vector<double>({10, 100}));
  REQUIRE(x.grad().to_vector<double>() == std::vector<double>{20, 400});
  Tensor z = x * 2.0;
  REQUIRE_THROWS_WITH(z.backward(), Contains("implied only for a one-element tensor, got shape [2]"));
  REQUIRE_THROWS_WITH(z.backward(ones({3}, {.dtype = kFloat64})), Contains("gradient's shape [3] does not match the tensor's shape [2]"));
  REQUIRE_THROWS_WITH(ones({1}).backward(), Contains("does not require grad"));
}

TEST_CASE("broadcast inputs get gradients summed back to their shape and dtype") {
  Tensor bias = from_vector<double>({1, 2, 3}).set_requires_grad();
  Tensor scale = full({}, 2.0, {.dtype = kFloat32}).set_requires_grad();
  Tensor x = ones({4, 3}, {.dtype = kFloat64});
  ((x + bias) * scale).sum().backward();
  REQUIRE(bias.grad().shape() == Shape{3});
  REQUIRE(bias.grad().to_vector<double>() == std::vector<double>{8, 8, 8});
  REQUIRE(scale.grad().dtype() == kFloat32);
  REQUIRE(scale.grad().item() == 4 * (2 + 3 + 4));
}

TEST_CASE("retain_graph allows a second backward, and without it the error names the op") {
  Tensor x = from_vector<double>({3}).set_requires_grad();
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  REQUIRE(x.grad().item() == 12.0);
  REQUIRE_THROWS_WITH(y.backward(), Contains("a second time"));
}

TEST_CASE("modifying a saved tensor in place is refused at backward") {
  Tensor a = from_vector<double>({1, 2});  // does not require grad: in-place is allowed
  Tensor w = from_vector<double>({3, 4}).set_requires_grad();
  Tensor y = (a * w).sum();
  a.add_(from_vector<double>({1, 1}));
  REQUIRE_THROWS_WITH(y.backward(), Contains("backward of 'mul'") && Contains("modified by an in-place operation"));
}

TEST_CASE("in-place ops on tensors that autograd tracks are refused outside NoGradGuard") {
  Tensor w = ones({2}).set_requires_grad();
  REQUIRE_THROWS_WITH(w.add_(ones({2})), Contains("in-place operation on a leaf tensor that requires grad"));
  Tensor y = w * 2;
  REQUIRE_THROWS_WITH(y.mul_(2), Contains("produced by 'mul'"));
  NoGradGuard no_grad;
  w.add_(ones({2}));  // an optimizer update
  REQUIRE(w.to_vector<float>() == std::vector<float>{2, 2});
}

TEST_CASE("NoGradGuard and detach stop recording") {
  Tensor w = ones({2}).set_requires_grad();
  {
    NoGradGuard no_grad;
    REQUIRE_FALSE((w * 2).requires_grad());
  }
  REQUIRE((w * 2).requires_grad());
  Tensor d = w.detach();
  REQUIRE_FALSE(d.requires_grad());
  REQUIRE(d.storage() == w.storage());
  REQUIRE_THROWS_WITH((w * 2).set_requires_grad(false), Contains("only a leaf tensor's flag can be set"));
  REQUIRE_THROWS_WITH(ones({2}, {.dtype = kInt64}).set_requires_grad(), Contains("only floating-point tensors"));
}

TEST_CASE("tensor hooks see and may replace the gradient, and leaf post-accumulate hooks fire once it is final") {
  Tensor x = from_vector<double>({1, 2}).set_requires_grad();
  Tensor y = x * 3.0;
  std::vector<std::string> order;
  y.register_hook([&](const Tensor& g) {
    order.push_back("y");
    REQUIRE(g.to_vector<double>() == std::vector<double>{1, 1});
    return g * 10.0;  // replaces the gradient flowing on
  });
  size_t removed = x.register_hook([&](const Tensor&) {
    order.push_back("removed");
    return Tensor();
  });
  x.remove_hook(removed);
  x.register_hook([&](const Tensor& g) {
    order.push_back("x");
    REQUIRE(g.to_vector<double>() == std::vector<double>{30, 30});
    return Tensor();
  });
  x.register_post_accumulate_grad_hook([&](const Tensor& leaf) {
    order.push_back("x accumulated");
    REQUIRE(leaf.grad().to_vector<double>() == std::vector<double>{30, 30});
  });
  y.sum().backward();
  REQUIRE(order == std::vector<std::string>{"y", "x", "x accumulated"});
  REQUIRE_THROWS_WITH(x.remove_hook(removed), Contains("no hook with handle"));
}

TEST_CASE("a leaf used twice gets one post-accumulate call with the summed gradient") {
  Tensor w = from_vector<double>({1.0}).set_requires_grad();
  int calls = 0;
  w.register_post_accumulate_grad_hook([&](const Tensor& leaf) {
    ++calls;
    REQUIRE(leaf.grad().item() == 5.0);
  });
  (w * 2.0 + w * 3.0).sum().backward();
  REQUIRE(calls == 1);
}

TEST_CASE("leaves' hooks fire in reverse order of use: the last layer's parameters first") {
  std::vector<Tensor> weights;
  for (int i = 0; i < 4; ++i) weights.push_back(full({1}, 1.0, {.dtype = kFloat64}).set_requires_grad());
  std::vector<int> ready;
  for (int i = 0; i < 4; ++i) {
    weights[i].register_post_accumulate_grad_hook([&ready, i](const Tensor&) { ready.push_back(i); });
  }
  Tensor h = ones({1}, {.dtype = kFloat64});
  for (const Tensor& w : weights) h = (h * w).tanh();
  h.sum().backward();
  REQUIRE(ready == std::vector<int>{3, 2, 1, 0});
}

TEST_CASE("retain_grad keeps a non-leaf gradient") {
  Tensor x = from_vector<double>({2}).set_requires_grad();
  Tensor y = x * x;
  y.retain_grad();
  (y * 3.0).sum().backward();
  REQUIRE(y.grad().item() == 3.0);
  REQUIRE(x.grad().item() == 12.0);
}

TEST_CASE("autograd::grad returns gradients without touching .grad()") {
  Tensor x = from_vector<double>({1, 2}).set_requires_grad();
  Tensor y = (x * x * x).sum();
  std::vector<Tensor> gradients = autograd::grad({y}, {x});
  REQUIRE(gradients[0].to_vector<double>() == std::vector<double>{3, 12});
  REQUIRE_FALSE(x.grad().defined());
  Tensor unused = ones({1}, {.dtype = kFloat64}).set_requires_grad();
  REQUIRE_THROWS_WITH(autograd::grad({(x * 2.0).sum()}, {unused}), Contains("is not reached from the outputs"));
}

TEST_CASE("a chain of 100,000 ops runs backward and is freed without deep recursion") {
  Tensor x = from_vector<double>({1.0}).set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = y + 1.0;
  y.sum().backward();
  REQUIRE(x.grad().item() == 1.0);
  REQUIRE(y.item() == 100001.0);
  y = Tensor();  // the whole chain is destroyed here
  SUCCEED("no stack overflow");
}

TEST_CASE("gradcheck catches a wrong derivative") {
  // A deliberately wrong op: forward x^2, backward claims 3x.
  auto wrong = [](const std::vector<Tensor>& inputs) {
    Tensor x = inputs[0];
    Tensor out;
    {
      NoGradGuard no_grad;
      out = x * x;
    }
    SavedTensor saved(x);
    record("wrong_square", {x}, {out}, [saved](const GradientList& g) {
      return GradientList{g[0] * saved.unpack("wrong_square") * 3.0};
    });
    return out;
  };
  Tensor x = from_vector<double>({0.5, 1.5}).set_requires_grad();
  autograd::GradcheckResult result = autograd::gradcheck(wrong, {x});
  REQUIRE_FALSE(result.passed);
  REQUIRE_THAT(result.message, Contains("analytic 1.5 vs numeric 1"));
}
