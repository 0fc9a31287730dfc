// The item-id map a checkpoint carries: dense ids <-> the data's ids, saved
// as the int64 tensor "item_ids" and read back with its shape and uniqueness
// checked.
#include <catch2/catch.hpp>

#include "recblocks/io/item_id_map.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;

TEST_CASE("ItemIdMap maps both ways and round-trips through a file", "[io][item_ids]") {
    const io::ItemIdMap m({0, 1196, 31, 9007199254740993LL});
    CHECK(m.num_items() == 3);
    CHECK(m.original(1) == 1196);
    CHECK(m.original(3) == 9007199254740993LL);
    CHECK(m.dense(31) == row_id_t{2});
    CHECK_FALSE(m.dense(0).has_value());  // the padding entry is not an item
    CHECK_FALSE(m.dense(5).has_value());
    io::SafetensorsWriter w;
    m.add_to(w);
    const auto r = io::SafetensorsReader::from_bytes(w.serialize(), "m.safetensors");
    const auto back = io::ItemIdMap::read(r, 3);
    REQUIRE(back.has_value());
    CHECK(back->originals() == m.originals());
    CHECK(back->dense(9007199254740993LL) == row_id_t{3});
    CHECK_THROWS_WITH(io::ItemIdMap::read(r, 4),
                      Contains("m.safetensors: tensor \"item_ids\" must be integers of shape [5] (the model has 4 items), "
                               "found I64 [4]"));
    io::SafetensorsWriter none;
    none.add("x", Vector<float>(Shape<1>{{2}}));
    CHECK_FALSE(io::ItemIdMap::read(io::SafetensorsReader::from_bytes(none.serialize()), 3).has_value());
}

TEST_CASE("ItemIdMap refuses a repeated id, in memory and in a file", "[io][item_ids]") {
    CHECK_THROWS_WITH(io::ItemIdMap({0, 5, 6, 5}), Contains("item id 5 appears twice (dense ids 1 and 3)"));
    CHECK_THROWS_AS(io::ItemIdMap(std::vector<std::int64_t>{}), ValueError);
    io::SafetensorsWriter w;
    Vector<std::int64_t> ids(Shape<1>{{3}});
    ids(0) = 0;
    ids(1) = 8;
    ids(2) = 8;
    w.add("item_ids", ids);
    CHECK_THROWS_AS(io::ItemIdMap::read(io::SafetensorsReader::from_bytes(w.serialize(), "dup"), 2), FormatError);
    io::SafetensorsWriter f;
    f.add("item_ids", Vector<float>(Shape<1>{{3}}));
    CHECK_THROWS_WITH(io::ItemIdMap::read(io::SafetensorsReader::from_bytes(f.serialize(), "f"), 2),
                      Contains("must be integers"));
}
