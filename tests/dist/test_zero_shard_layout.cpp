// ShardLayout: offsets, padding, shard ranges and the pieces a shard crosses, checked against
// cases worked out by hand.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "dist/zero/shard_layout.h"

using dtrain::dist::ShardLayout;
using dtrain::dist::ShardPiece;

TEST_CASE("ShardLayout: two tensors over three shards, padded to a multiple of three", "[zero][layout]") {
  // [0 1 2 3 4 5 | 6 7 8 9] + 2 padding; shards of 4: [0,4) [4,8) [8,12)
  ShardLayout layout({6, 4}, 3);
  CHECK(layout.total() == 10);
  CHECK(layout.padded_total() == 12);
  CHECK(layout.padding() == 2);
  CHECK(layout.shard_size() == 4);
  CHECK(layout.offset(0) == 0);
  CHECK(layout.offset(1) == 6);
  CHECK(layout.shard_begin(2) == 8);
  CHECK(layout.shard_end(2) == 12);
  CHECK(layout.pieces(0) == std::vector<ShardPiece>{{0, 0, 0, 4}});
  CHECK(layout.pieces(1) == std::vector<ShardPiece>{{0, 4, 4, 2}, {1, 0, 6, 2}});
  CHECK(layout.pieces(2) == std::vector<ShardPiece>{{1, 2, 8, 2}});
  CHECK(layout.padding_in_shard(0) == 0);
  CHECK(layout.padding_in_shard(1) == 0);
  CHECK(layout.padding_in_shard(2) == 2);
}

TEST_CASE("ShardLayout: a shard of padding only, and one tensor spanning every shard", "[zero][layout]") {
  // 5 elements over 4 shards: shards of 2, [0,2) [2,4) [4,6) [6,8); 3 padding, shard 3 holds none
  ShardLayout layout({5}, 4);
  CHECK(layout.padded_total() == 8);
  CHECK(layout.pieces(2) == std::vector<ShardPiece>{{0, 4, 4, 1}});
  CHECK(layout.pieces(3).empty());
  CHECK(layout.padding_in_shard(2) == 1);
  CHECK(layout.padding_in_shard(3) == 2);
  int64_t covered = 0;
  for (int shard = 0; shard < 4; ++shard) {
    for (const ShardPiece& piece : layout.pieces(shard)) covered += piece.length;
  }
  CHECK(covered == 5);
}

TEST_CASE("ShardLayout: empty tensors, exact division and one shard", "[zero][layout]") {
  ShardLayout exact({3, 0, 3}, 2);  // [0 1 2 | | 3 4 5]: shards [0,3) [3,6), no padding
  CHECK(exact.padding() == 0);
  CHECK(exact.offset(2) == 3);
  CHECK(exact.pieces(0) == std::vector<ShardPiece>{{0, 0, 0, 3}});
  CHECK(exact.pieces(1) == std::vector<ShardPiece>{{2, 0, 3, 3}});

  ShardLayout one({2, 3}, 1);
  CHECK(one.shard_size() == 5);
  CHECK(one.pieces(0) == std::vector<ShardPiece>{{0, 0, 0, 2}, {1, 0, 2, 3}});

  // Three tensors inside one shard, the middle one whole.
  ShardLayout small({1, 1, 1, 9}, 2);  // 12 elements, shards [0,6) [6,12)
  CHECK(small.pieces(0) == std::vector<ShardPiece>{{0, 0, 0, 1}, {1, 0, 1, 1}, {2, 0, 2, 1}, {3, 0, 3, 3}});
  CHECK(small.pieces(1) == std::vector<ShardPiece>{{3, 3, 6, 6}});
}

TEST_CASE("ShardLayout: refuses a bad shard count or index", "[zero][layout]") {
  CHECK_THROWS_WITH(ShardLayout({4}, 0), Catch::Matchers::Contains("at least one shard"));
  ShardLayout layout({4}, 2);
  CHECK_THROWS_WITH(layout.pieces(2), Catch::Matchers::Contains("from 0 to 1, got 2"));
}
