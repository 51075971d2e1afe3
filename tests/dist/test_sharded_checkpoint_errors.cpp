// Refused sharded checkpoints: a missing index, a missing, truncated or corrupted shard, a shard
// of another save, a damaged index, a model or optimizer that does not match, and saves whose
// fragments do not add up. Each raises a dtrain::Error on every rank — also where only one rank
// can see the problem — naming the file and the tensor, and changes nothing.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "optim/sgd.h"
#include "tests/dist/test_sharded_checkpoint_support.h"

using namespace dtrain;
using namespace dtrain::dist;
using namespace dtrain::dist::testing;
using Catch::Matchers::Contains;

namespace {

struct Saved {
  std::shared_ptr<Module> model;
  std::unique_ptr<optim::AdamW> optimizer;
};

// A model trained two steps and saved by every rank into dir, at `step`.
Saved save_trained(const std::filesystem::path& dir, int64_t step = 2) {
  Saved saved{make_mlp(1), nullptr};
  saved.optimizer = make_adamw(*saved.model);
  train_step(*saved.model, *saved.optimizer, 0);
  train_step(*saved.model, *saved.optimizer, 1);
  save_whole_state(dir, *saved.model, *saved.optimizer, {.step = step}, &world());
  return saved;
}

// Runs on rank 0 only, between barriers (a change to the files every rank then sees).
template <typename Change>
void on_rank_0(Change change) {
  world().barrier()->wait();
  if (world().rank() == 0) change();
  world().barrier()->wait();
}

// How an agreed error begins: with more than one rank it names the one that failed; a world of
// one raises the rank's own error unchanged.
std::string failed_on_last_rank() {
  return world().size() == 1 ? std::string() : " failed on rank " + std::to_string(world().size() - 1) + ": ";
}

// The last rank's shard file of the checkpoint in dir, as its index names it.
std::string last_shard(const std::filesystem::path& dir) { return read_index(dir).files.back().name; }

// A fresh model and optimizer, a load that must fail with every one of `parts` in its message,
// and the model left as it was.
void check_load_fails(const std::filesystem::path& dir, const std::vector<std::string>& parts,
                      std::shared_ptr<Module> model = make_mlp(99)) {
  auto optimizer = make_adamw(*model);
  std::vector<Tensor> before = snapshot(*model);
  std::string message;
  try {
    load_whole_state(ShardedCheckpoint::open(dir, &world()), *model, *optimizer, &world());
  } catch (const Error& error) {
    message = error.what();
  }
  INFO(message);
  REQUIRE_FALSE(message.empty());
  for (const std::string& part : parts) CHECK_THAT(message, Contains(part));
  CHECK(unchanged(*model, before));
  CHECK(optimizer->state_dict().count("state.0.step") == 0);  // the optimizer did not load either
}

}  // namespace

TEST_CASE("A sharded checkpoint without its index is refused on every rank", "[sharded_checkpoint][errors]") {
  SharedDirectory dir;
  save_trained(dir.path());
  on_rank_0([&] { std::filesystem::remove(dir / "index.json"); });
  CHECK_THROWS_WITH(ShardedCheckpoint::open(dir.path(), &world()),
                    Contains("index.json") && Contains("does not exist") && Contains("did not finish"));
  // The same when only the last rank cannot see it (here: it looks in another directory).
  on_rank_0([&] { std::filesystem::create_directories(dir / "elsewhere"); });
  SharedDirectory second;
  save_trained(second.path());
  const bool last = world().rank() == world().size() - 1;
  CHECK_THROWS_WITH(ShardedCheckpoint::open(last ? dir / "elsewhere" : second.path(), &world()),
                    Contains(failed_on_last_rank()) && Contains("elsewhere/index.json") && Contains("does not exist"));
}

TEST_CASE("A missing shard file is refused on every rank, naming it and the tensor", "[sharded_checkpoint][errors]") {
  SharedDirectory dir;
  save_trained(dir.path());
  const std::string shard = last_shard(dir.path());
  on_rank_0([&] { std::filesystem::remove(dir / shard); });
  // Found when a rank first needs the file: its own shard at open (at the saved world size), or a
  // tensor in it.
  check_load_fails(dir.path(), {shard, "does not exist", world().size() == 1 ? "reading tensor '" : "reading "});
}

TEST_CASE("A shard file only one rank reads is missing: every rank raises, naming it", "[sharded_checkpoint][errors]") {
  SharedDirectory dir;
  Saved saved = save_trained(dir.path());
  const std::string shard = last_shard(dir.path());
  on_rank_0([&] { std::filesystem::remove(dir / shard); });
  // As ZeRO reads: each rank its own run of each tensor — at this world size, its own file only.
  ShardedCheckpoint checkpoint = ShardedCheckpoint::open(dir.path());
  const int rank = world().rank();
  const int n = world().size();
  std::vector<Tensor> mine;
  CHECK_THROWS_WITH(agree_on_errors(&world(), "loading my shard",
                                    [&] {
                                      for (const std::string& name : checkpoint.names()) {
                                        const int64_t numel = checkpoint.shape(name).numel();
                                        mine.push_back(checkpoint.read(name, numel * rank / n, numel * (rank + 1) / n));
                                      }
                                    }),
                    Contains("loading my shard") && Contains(failed_on_last_rank()) && Contains(shard) &&
                        Contains("does not exist") && Contains("reading tensor '"));
  // The ranks still communicate in step afterwards.
  CHECK(all_gather_int64(&world(), rank).size() == static_cast<size_t>(n));
}

TEST_CASE("A truncated shard file is refused on every rank", "[sharded_checkpoint][errors]") {
  SharedDirectory dir;
  save_trained(dir.path());
  const std::string shard = last_shard(dir.path());
  on_rank_0([&] {
    const auto file = dir / shard;
    std::filesystem::resize_file(file, std::filesystem::file_size(file) - 10);
  });
  check_load_fails(dir.path(), {shard, "truncated", world().size() == 1 ? "reading tensor '" : "reading "});
}

TEST_CASE("A shard file with a flipped byte fails its checksum, naming the elements", "[sharded_checkpoint][errors]") {
  SharedDirectory dir;
  save_trained(dir.path());
  const std::string shard = last_shard(dir.path());
  on_rank_0([&] {
    // The last byte of the file is the last byte of its last tensor's data.
    std::fstream file(dir / shard, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(-1, std::ios::end);
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x10);
    file.seekp(-1, std::ios::end);
    file.write(&byte, 1);
  });
  check_load_fails(dir.path(), {shard, "do not match their saved CRC-32", "the file is corrupted", "of tensor '"});
}

TEST_CASE("A shard file of another save or step is refused", "[sharded_checkpoint][errors]") {
  SharedDirectory dir;
  save_trained(dir / "step-2", 2);
  save_trained(dir / "step-5", 5);
  // Another save's shard under the name this index gives its last rank's file.
  const std::string step_2_shard = last_shard(dir / "step-2");
  const std::string step_5_shard = last_shard(dir / "step-5");
  on_rank_0([&] {
    std::filesystem::copy_file(dir / "step-5" / step_5_shard, dir / "step-2" / step_2_shard,
                               std::filesystem::copy_options::overwrite_existing);
  });
  check_load_fails(dir / "step-2", {step_2_shard, "belongs to another save", "holds step 5", "is of step 2"});
  // The same step saved twice: the save ids differ.
  save_trained(dir / "twice", 5);
  const std::string twice_shard = last_shard(dir / "twice");
  on_rank_0([&] {
    std::filesystem::copy_file(dir / "twice" / twice_shard, dir / "step-5" / step_5_shard,
                               std::filesystem::copy_options::overwrite_existing);
  });
  check_load_fails(dir / "step-5", {step_5_shard, "belongs to another save", "save id"});
}

TEST_CASE("A damaged index is refused on every rank, naming it", "[sharded_checkpoint][errors]") {
  SharedDirectory dir;
  save_trained(dir.path());
  // Valid JSON, but the first fragment of the first tensor ('model.0.bias', 10 elements) now
  // claims more elements than there are, or than its neighbour leaves it.
  on_rank_0([&] {
    std::ifstream input(dir / "index.json", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(input)), std::istreambuf_iterator<char>());
    const size_t end = text.find("\"end\":", text.find("\"model.0.bias\""));
    text.replace(end, text.find(',', end) - end, "\"end\":11");
    std::ofstream(dir / "index.json", std::ios::binary | std::ios::trunc) << text;
  });
  CHECK_THROWS_WITH(ShardedCheckpoint::open(dir.path(), &world()),
                    Contains("index.json") && Contains("'tensors.model.0.bias.fragments[0]': elements [0, 11)"));
  on_rank_0([&] {
    std::ofstream index(dir / "index.json", std::ios::binary | std::ios::trunc);
    index << "{\"format\": \"dtrain.sharded_checkpoint.v1\", \"save_id\": ";
  });
  CHECK_THROWS_WITH(ShardedCheckpoint::open(dir.path(), &world()),
                    Contains("index.json") && Contains("not valid JSON"));
}

TEST_CASE("A model that does not match the checkpoint is refused, naming the tensors", "[sharded_checkpoint][errors]") {
  SharedDirectory dir;
  save_trained(dir.path());
  const std::string index = (dir / "index.json").string();
  check_load_fails(
      dir.path(),
      {index, "tensor 'model.0.weight' is [10, 6] float32 in the checkpoint, but the model's is [12, 6] float32",
       "'model.0.bias'"},
      make_mlp(99, 12));
  check_load_fails(dir.path(), {index, "missing tensor 'model.6.weight'", "missing tensor 'model.6.bias'"},
                   make_mlp(99, 10, true));
  // An optimizer of another kind: its state and hyper-parameters do not fit.
  std::shared_ptr<Module> model = make_mlp(99);
  optim::SGD sgd(model->parameters(), {.lr = 0.1, .momentum = 0.9});
  std::vector<Tensor> before = snapshot(*model);
  CHECK_THROWS_WITH(load_whole_state(ShardedCheckpoint::open(dir.path(), &world()), *model, sgd, &world()),
                    Contains(index) && Contains("(optimizer)"));
  CHECK(unchanged(*model, before));
}

TEST_CASE("A save whose fragments overlap, leave a gap or disagree raises on every rank",
          "[sharded_checkpoint][errors]") {
  SharedDirectory dir;
  const int rank = world().rank();
  const int n = world().size();
  Tensor whole = arange(4 * n, {.dtype = kFloat32});
  if (n > 1) {
    // Every rank passes the whole tensor.
    CHECK_THROWS_WITH(save_sharded_checkpoint(dir / "overlap", {{"t", Shape{4 * n}, 0, whole}}, {}, &world()),
                      Contains("tensor 't'") && Contains("overlap") && Contains("rank 1"));
    // Two ranks see one tensor with different shapes.
    Shape shape = rank == n - 1 ? Shape{4 * n, 1} : Shape{4 * n};
    CHECK_THROWS_WITH(
        save_sharded_checkpoint(dir / "shapes", {{"t", shape, 4 * rank, whole.narrow(0, 4 * rank, 4)}}, {}, &world()),
        Contains("tensor 't' is [" + std::to_string(4 * n) + "] float32 on rank 0 but [" + std::to_string(4 * n) +
                 ", 1] float32 on rank " + std::to_string(n - 1)));
    // Ranks at different steps.
    CHECK_THROWS_WITH(save_sharded_checkpoint(dir / "steps", {}, {.step = rank == n - 1 ? 8 : 7}, &world()),
                      Contains("rank " + std::to_string(n - 1) + " saves step 8 but rank 0 saves step 7"));
  }
  // Every rank holds 3 of its 4 elements: the 4th of each is saved by no one.
  CHECK_THROWS_WITH(
      save_sharded_checkpoint(dir / "gap", {{"t", Shape{4 * n}, 4 * rank, whole.narrow(0, 4 * rank, 3)}}, {}, &world()),
      Contains("tensor 't' [" + std::to_string(4 * n) + "]: elements [3, 4) are held by no rank"));
  // One rank's fragment reaches outside its tensor: its own check, agreed by every rank.
  const int64_t begin = rank == n - 1 ? 4 * n - 2 : 4 * rank;
  CHECK_THROWS_WITH(save_sharded_checkpoint(dir / "outside", {{"t", Shape{4 * n}, begin, whole.narrow(0, 4 * rank, 4)}},
                                            {}, &world()),
                    Contains(failed_on_last_rank()) && Contains("fragment 't'") && Contains("outside"));

  // A refused save into the directory of an earlier checkpoint leaves that checkpoint intact.
  save_sharded_checkpoint(dir / "kept", {{"t", Shape{4 * n}, 4 * rank, whole.narrow(0, 4 * rank, 4)}}, {.step = 1},
                          &world());
  CHECK_THROWS(save_sharded_checkpoint(dir / "kept", {{"t", Shape{4 * n}, 4 * rank, whole.narrow(0, 4 * rank, 3)}},
                                       {.step = 2}, &world()));
  ShardedCheckpoint kept = ShardedCheckpoint::open(dir / "kept", &world());
  CHECK(kept.step() == 1);
  CHECK(same_bytes(kept.read("t"), whole));
  // None of them left an index behind.
  world().barrier()->wait();
  for (const char* name : {"overlap", "shapes", "steps", "gap", "outside"})
    CHECK_FALSE(std::filesystem::exists(dir / name / "index.json"));
}
