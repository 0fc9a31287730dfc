// A checkpoint's description of its model: every config field round-trips
// exactly through the metadata strings, and every way the metadata can be
// wrong (missing key, unparsable value, unknown option, unknown model kind,
// newer version, impossible sizes, sizes the file cannot hold) is a
// FormatError naming the key.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "recblocks/io/safetensors.hpp"
#include "recblocks/models/model_description.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;

namespace {

models::SASRecConfig unusual_sasrec() {  // every field away from its default
    models::SASRecConfig c;
    c.num_items = 1234;
    c.max_len = 37;
    c.d_model = 24;
    c.num_blocks = 3;
    c.heads = 4;
    c.dropout = 0.1;  // not exact in binary: must come back to the same bits
    c.ln_eps = 1.0 / 3.0 * 1e-7;
    c.positions = blocks::PositionRows::per_slot;
    c.mask_padding_keys = true;
    c.l2_emb = 2.5e-5;
    c.matryoshka_widths = {6, 12, 24};
    c.matryoshka_weights = {0.5, 0.25, 1.0 / 7.0};
    c.init = models::SASRecInit::scaled_normal;
    c.timeline_mask = false;
    c.activation = Activation::gelu;
    c.ffn_inner = 40;
    c.scale_embedding = false;
    c.embedding_norm = true;
    c.final_norm = false;
    return c;
}

models::BERT4RecConfig unusual_bert4rec() {
    models::BERT4RecConfig c;
    c.num_items = 99;
    c.max_len = 11;
    c.d_model = 12;
    c.num_blocks = 5;
    c.heads = 3;
    c.inner = 17;
    c.dropout = 0.3;
    c.attention_dropout = 0.05;
    c.ln_eps = 1e-6;
    c.init_std = 0.015;
    c.output_head = false;
    c.output_bias = false;
    c.history_drops_oldest = true;
    c.positions = blocks::PositionRows::from_oldest;
    return c;
}

std::optional<models::ModelDescription> read(const std::map<std::string, std::string>& m) {
    return models::read_model_description(m, "model.safetensors");
}

}  // namespace

TEST_CASE("a SASRec description round-trips every field exactly", "[models][description]") {
    const auto c = unusual_sasrec();
    for (const auto norm : {models::NormKind::query, models::NormKind::pre, models::NormKind::post}) {
        const auto meta = models::model_metadata(models::ModelDescription::of(c, norm));
        CHECK(meta.at("recblocks.model_metadata") == "1");
        CHECK(meta.at("model") == "sasrec");
        CHECK(meta.at("config.positions") == "per_slot");
        const auto d = read(meta);
        REQUIRE(d.has_value());
        CHECK(d->kind == models::ModelKind::sasrec);
        CHECK(d->norm == norm);
        CHECK(d->dtype == "f32");
        const auto& r = d->sasrec;
        CHECK(r.num_items == c.num_items);
        CHECK(r.max_len == c.max_len);
        CHECK(r.d_model == c.d_model);
        CHECK(r.num_blocks == c.num_blocks);
        CHECK(r.heads == c.heads);
        CHECK(r.dropout == c.dropout);  // bit-exact, not approximately
        CHECK(r.ln_eps == c.ln_eps);
        CHECK(r.positions == c.positions);
        CHECK(r.mask_padding_keys == c.mask_padding_keys);
        CHECK(r.l2_emb == c.l2_emb);
        CHECK(r.matryoshka_widths == c.matryoshka_widths);
        CHECK(r.matryoshka_weights == c.matryoshka_weights);
        CHECK(r.init == c.init);
        CHECK(r.timeline_mask == c.timeline_mask);
        CHECK(r.activation == c.activation);
        CHECK(r.ffn_inner == c.ffn_inner);
        CHECK(r.scale_embedding == c.scale_embedding);
        CHECK(r.embedding_norm == c.embedding_norm);
        CHECK(r.final_norm == c.final_norm);
    }
    // Every key under "config." is one the reader consumed: a field listed for writing is listed for reading.
    const auto meta = models::model_metadata(models::ModelDescription::of(c, models::NormKind::pre));
    std::size_t config_keys = 0;
    for (const auto& [k, v] : meta) config_keys += k.rfind("config.", 0) == 0;
    CHECK(config_keys == 19);
}

TEST_CASE("a BERT4Rec description round-trips every field exactly", "[models][description]") {
    const auto c = unusual_bert4rec();
    const auto meta = models::model_metadata(models::ModelDescription::of(c));
    CHECK(meta.at("model") == "bert4rec");
    CHECK(meta.at("norm") == "post");
    const auto d = read(meta);
    REQUIRE(d.has_value());
    CHECK(d->kind == models::ModelKind::bert4rec);
    const auto& r = d->bert4rec;
    CHECK(r.num_items == c.num_items);
    CHECK(r.max_len == c.max_len);
    CHECK(r.d_model == c.d_model);
    CHECK(r.num_blocks == c.num_blocks);
    CHECK(r.heads == c.heads);
    CHECK(r.inner == c.inner);
    CHECK(r.dropout == c.dropout);
    CHECK(r.attention_dropout == c.attention_dropout);
    CHECK(r.ln_eps == c.ln_eps);
    CHECK(r.init_std == c.init_std);
    CHECK(r.output_head == c.output_head);
    CHECK(r.output_bias == c.output_bias);
    CHECK(r.history_drops_oldest == c.history_drops_oldest);
    CHECK(r.positions == c.positions);
    CHECK(d->num_items() == 99);
    CHECK(d->max_len() == 11);
}

TEST_CASE("metadata without a description reads as none (an older checkpoint)", "[models][description]") {
    CHECK_FALSE(read({}).has_value());
    CHECK_FALSE(read({{"model", "sasrec"}, {"maxlen", "200"}, {"format", "recblocks-checkpoint-1"}}).has_value());
}

TEST_CASE("bad descriptions are FormatErrors naming the key", "[models][description]") {
    const auto good = models::model_metadata(models::ModelDescription::of(unusual_sasrec(), models::NormKind::query));
    auto with = [&](const std::string& key, const std::string& value) {
        auto m = good;
        m[key] = value;
        return m;
    };
    auto without = [&](const std::string& key) {
        auto m = good;
        m.erase(key);
        return m;
    };
    const struct {
        const char* what;
        std::map<std::string, std::string> meta;
        const char* message;
    } cases[] = {
        {"missing field", without("config.max_len"), "model.safetensors: metadata \"config.max_len\" is missing"},
        {"missing kind", without("model"), "metadata \"model\" is missing"},
        {"missing norm", without("norm"), "metadata \"norm\" is missing"},
        {"not an integer", with("config.d_model", "24.5"), "metadata \"config.d_model\" is \"24.5\", expected an integer"},
        {"not a number", with("config.dropout", "lots"), "metadata \"config.dropout\" is \"lots\", expected a number"},
        {"not a bool", with("config.mask_padding_keys", "1"), "\"config.mask_padding_keys\" is \"1\", expected true or false"},
        {"unknown enum name", with("config.positions", "sinusoid"), "expected one of from_one, per_slot"},
        {"bad list", with("config.matryoshka_widths", "6,,24"), "expected comma-separated values, each an integer"},
        {"unknown option", with("config.wormhole", "true"),
         "metadata \"config.wormhole\" is not an option this version of recblocks knows"},
        {"unknown model kind", with("model", "gru4rec"), "\"model\" is \"gru4rec\", a model kind this recblocks does not know"},
        {"newer version", with("recblocks.model_metadata", "2"),
         "the model description has version 2 but this recblocks reads versions up to 1"},
        {"bad version", with("recblocks.model_metadata", "one"), "\"recblocks.model_metadata\" is \"one\""},
        {"other dtype", with("dtype", "bf16"), "metadata \"dtype\" is \"bf16\""},
        {"heads do not divide", with("config.heads", "5"), "heads must divide d_model"},
        {"zero items", with("config.num_items", "0"), "config.num_items 0"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        CHECK_THROWS_WITH(read(c.meta), Contains(c.message));
        CHECK_THROWS_AS(read(c.meta), FormatError);
    }
    auto b = models::model_metadata(models::ModelDescription::of(unusual_bert4rec()));
    b["norm"] = "query";
    CHECK_THROWS_WITH(read(b), Contains("BERT4Rec is post-norm"));
}

TEST_CASE("a description claiming more than the file holds is refused before anything is allocated",
          "[models][description]") {
    io::SafetensorsWriter w;
    w.add("w", Matrix<float>(Shape<2>{{8, 4}}));
    const auto bytes = w.serialize();
    const auto r = io::SafetensorsReader::from_bytes(bytes, "tiny.safetensors");
    auto c = unusual_sasrec();
    CHECK_THROWS_WITH(models::check_description_fits(models::ModelDescription::of(c, models::NormKind::query), r),
                      Contains("tiny.safetensors: the metadata describes a model of at least"));
    c.num_items = 1;
    c.max_len = 1;
    c.d_model = 2;
    c.num_blocks = 1;
    CHECK_NOTHROW(models::check_description_fits(models::ModelDescription::of(c, models::NormKind::query), r));
}
