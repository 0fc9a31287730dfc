#pragma once
// What a checkpoint needs to rebuild its model without flags: the model kind,
// its whole configuration (SASRecConfig / BERT4RecConfig), SASRec's norm
// placement, the weights' dtype and the version of this description, as
// safetensors "__metadata__" strings:
//
//   "recblocks.model_metadata" = "1"        (kModelMetadataVersion)
//   "model"                    = "sasrec" | "bert4rec"
//   "norm"                     = "query" | "pre" | "post"   (SASRec; BERT4Rec is post-norm)
//   "dtype"                    = "f32"
//   "config.<field>"           = one key per field of the model's config
//
// The fields are listed once, in visit_fields() below: a new config field is
// one line there. read_model_description() names the key in every error
// (missing, not a value of its type, a "config." key this version does not
// know, an unknown model kind, a version newer than this reader), and returns
// nullopt for files written before the description existed (no
// "recblocks.model_metadata" key): their loaders need the model flags.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "recblocks/io/metadata_fields.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/policies/norm_placement.hpp"

RECBLOCKS_NAMESPACE_BEGIN

namespace io {
template <>
struct EnumNames<blocks::PositionRows> {
    static constexpr std::array<std::pair<blocks::PositionRows, std::string_view>, 3> values{
        {{blocks::PositionRows::from_one, "from_one"},
         {blocks::PositionRows::per_slot, "per_slot"},
         {blocks::PositionRows::from_oldest, "from_oldest"}}};
};
template <>
struct EnumNames<Activation> {
    static constexpr std::array<std::pair<Activation, std::string_view>, 2> values{
        {{Activation::relu, "relu"}, {Activation::gelu, "gelu"}}};
};
template <>
struct EnumNames<models::SASRecInit> {
    static constexpr std::array<std::pair<models::SASRecInit, std::string_view>, 2> values{
        {{models::SASRecInit::xavier_normal, "xavier_normal"}, {models::SASRecInit::scaled_normal, "scaled_normal"}}};
};
}  // namespace io

namespace models {

inline constexpr std::int64_t kModelMetadataVersion = 1;
inline constexpr std::string_view kModelMetadataKey = "recblocks.model_metadata";

/// Every SASRecConfig field, by its metadata name. (One line per field.)
template <class Config, class F>
    requires std::is_same_v<std::remove_const_t<Config>, SASRecConfig>
void visit_fields(Config& c, F&& f) {
    f("num_items", c.num_items);
    f("max_len", c.max_len);
    f("d_model", c.d_model);
    f("num_blocks", c.num_blocks);
    f("heads", c.heads);
    f("dropout", c.dropout);
    f("ln_eps", c.ln_eps);
    f("positions", c.positions);
    f("mask_padding_keys", c.mask_padding_keys);
    f("l2_emb", c.l2_emb);
    f("matryoshka_widths", c.matryoshka_widths);
    f("matryoshka_weights", c.matryoshka_weights);
    f("init", c.init);
    f("timeline_mask", c.timeline_mask);
    f("activation", c.activation);
    f("ffn_inner", c.ffn_inner);
    f("scale_embedding", c.scale_embedding);
    f("embedding_norm", c.embedding_norm);
    f("final_norm", c.final_norm);
}

/// Every BERT4RecConfig field, by its metadata name. (One line per field.)
template <class Config, class F>
    requires std::is_same_v<std::remove_const_t<Config>, BERT4RecConfig>
void visit_fields(Config& c, F&& f) {
    f("num_items", c.num_items);
    f("max_len", c.max_len);
    f("d_model", c.d_model);
    f("num_blocks", c.num_blocks);
    f("heads", c.heads);
    f("inner", c.inner);
    f("dropout", c.dropout);
    f("attention_dropout", c.attention_dropout);
    f("ln_eps", c.ln_eps);
    f("init_std", c.init_std);
    f("output_head", c.output_head);
    f("output_bias", c.output_bias);
    f("history_drops_oldest", c.history_drops_oldest);
    f("positions", c.positions);
}

enum class ModelKind : std::uint8_t { sasrec, bert4rec };
/// SASRec's norm placement policy, as a value (policies::QueryNorm, PreNorm, PostNorm): the
/// enum a checkpoint layout names too.
using NormKind = policies::NormKind;

template <class Norm>
constexpr NormKind norm_kind() {
    if constexpr (std::is_same_v<Norm, policies::QueryNorm>) return NormKind::query;
    else if constexpr (std::is_same_v<Norm, policies::PreNorm>) return NormKind::pre;
    else if constexpr (std::is_same_v<Norm, policies::PostNorm>) return NormKind::post;
    else static_assert(sizeof(Norm) == 0, "a checkpoint describes QueryNorm, PreNorm or PostNorm");
}

/// The architecture a checkpoint holds.
struct ModelDescription {
    ModelKind kind = ModelKind::sasrec;
    SASRecConfig sasrec;      ///< when kind == sasrec
    BERT4RecConfig bert4rec;  ///< when kind == bert4rec
    NormKind norm = NormKind::query;  ///< SASRec's; BERT4Rec is always post-norm
    std::string dtype = "f32";        ///< the weights' element type (only f32 models are saved today)

    static ModelDescription of(const SASRecConfig& c, NormKind norm) {
        ModelDescription d;
        d.kind = ModelKind::sasrec;
        d.sasrec = c;
        d.norm = norm;
        return d;
    }
    static ModelDescription of(const BERT4RecConfig& c) {
        ModelDescription d;
        d.kind = ModelKind::bert4rec;
        d.bert4rec = c;
        d.norm = NormKind::post;
        return d;
    }
    [[nodiscard]] index_t num_items() const { return kind == ModelKind::sasrec ? sasrec.num_items : bert4rec.num_items; }
    [[nodiscard]] index_t max_len() const { return kind == ModelKind::sasrec ? sasrec.max_len : bert4rec.max_len; }
    [[nodiscard]] index_t d_model() const { return kind == ModelKind::sasrec ? sasrec.d_model : bert4rec.d_model; }
};

}  // namespace models

namespace io {
template <>
struct EnumNames<models::ModelKind> {
    static constexpr std::array<std::pair<models::ModelKind, std::string_view>, 2> values{
        {{models::ModelKind::sasrec, "sasrec"}, {models::ModelKind::bert4rec, "bert4rec"}}};
};
template <>
struct EnumNames<models::NormKind> {
    static constexpr std::array<std::pair<models::NormKind, std::string_view>, 3> values{
        {{models::NormKind::query, "query"}, {models::NormKind::pre, "pre"}, {models::NormKind::post, "post"}}};
};
}  // namespace io

namespace models {

/// The metadata strings describing `d` (add them to a checkpoint's metadata).
inline std::map<std::string, std::string> model_metadata(const ModelDescription& d) {
    std::map<std::string, std::string> m;
    io::MetadataWriter top(m, "");
    top(kModelMetadataKey, kModelMetadataVersion);
    top("model", d.kind);
    top("norm", d.norm);
    top("dtype", d.dtype);
    io::MetadataWriter config(m, "config.");
    if (d.kind == ModelKind::sasrec) visit_fields(d.sasrec, config);
    else visit_fields(d.bert4rec, config);
    return m;
}

/// The description in a file's metadata, or nullopt if the file has none
/// (written before descriptions existed). FormatError naming `source` and the
/// key otherwise: see the top of this file.
inline std::optional<ModelDescription> read_model_description(const std::map<std::string, std::string>& meta,
                                                               const std::string& source) {
    const auto v = meta.find(std::string(kModelMetadataKey));
    if (v == meta.end()) return std::nullopt;
    std::int64_t version = 0;
    RECBLOCKS_CHECK_FORMAT(io::detail::parse_metadata_text(v->second, version) && version >= 1, source,
                           ": metadata \"", kModelMetadataKey, "\" is \"", v->second, "\", expected a version >= 1");
    RECBLOCKS_CHECK_FORMAT(version <= kModelMetadataVersion, source, ": the model description has version ", version,
                           " but this recblocks reads versions up to ", kModelMetadataVersion,
                           " (saved by a newer recblocks: upgrade to load it)");
    ModelDescription d;
    io::MetadataReader top(meta, "", source);
    const auto kind = meta.find("model");
    RECBLOCKS_CHECK_FORMAT(kind == meta.end() || io::detail::parse_metadata_text(kind->second, d.kind), source,
                           ": metadata \"model\" is \"", kind->second, "\", a model kind this recblocks does not know (",
                           io::detail::expected_text<ModelKind>(), ")");
    top("model", d.kind);
    top("norm", d.norm);
    top("dtype", d.dtype);
    RECBLOCKS_CHECK_FORMAT(d.dtype == "f32", source, ": metadata \"dtype\" is \"", d.dtype,
                           "\"; this recblocks loads f32 models");
    RECBLOCKS_CHECK_FORMAT(d.kind == ModelKind::sasrec || d.norm == NormKind::post, source,
                           ": metadata \"norm\" is \"", meta.at("norm"), "\" but BERT4Rec is post-norm");
    io::MetadataReader config(meta, "config.", source);
    if (d.kind == ModelKind::sasrec) visit_fields(d.sasrec, config);
    else visit_fields(d.bert4rec, config);
    config.check_no_unknown_keys();
    const index_t n = d.num_items(), l = d.max_len(), dm = d.d_model();
    const index_t blocks = d.kind == ModelKind::sasrec ? d.sasrec.num_blocks : d.bert4rec.num_blocks;
    const index_t heads = d.kind == ModelKind::sasrec ? d.sasrec.heads : d.bert4rec.heads;
    RECBLOCKS_CHECK_FORMAT(n >= 1 && l >= 1 && dm >= 1 && blocks >= 1 && heads >= 1 && dm % heads == 0, source,
                           ": metadata describes an impossible model (config.num_items ", n, ", config.max_len ", l,
                           ", config.d_model ", dm, ", config.num_blocks ", blocks, ", config.heads ", heads,
                           "): counts must be >= 1 and heads must divide d_model");
    return d;
}

/// FormatError unless the file holds at least the values the description's
/// tables need ((N + L) · D for the item and position tables, D² per block):
/// a corrupted count must not make a loader allocate terabytes before the
/// tensor shapes are compared.
inline void check_description_fits(const ModelDescription& d, const io::SafetensorsReader& r) {
    double values = 0;
    for (const auto& name : r.names()) values += double(r.record(name).numel());
    const index_t blocks = d.kind == ModelKind::sasrec ? d.sasrec.num_blocks : d.bert4rec.num_blocks;
    const double need = (double(d.num_items()) + double(d.max_len())) * double(d.d_model()) +
                        double(blocks) * double(d.d_model()) * double(d.d_model());
    RECBLOCKS_CHECK_FORMAT(need <= values, r.source(), ": the metadata describes a model of at least ", need,
                           " values but the file holds ", values, " (corrupted metadata?)");
}

}  // namespace models
RECBLOCKS_NAMESPACE_END
