#pragma once
// Serving through CUDA graphs captured per batch shape.
//
// A forward pass of a small batch is dozens of short kernels; launched one by
// one, their launch overhead is most of the time (PyTorch's SASRec at batch 1
// spends ~0.27 ms on an H100, mostly in launches). A CUDA graph records the
// whole sequence once and replays it with one launch.
//
//   backend::Cuda gpu{stream};                       // a stream of your own, not the legacy default
//   models::SASRec<float, policies::QueryNorm, CudaMemory> model(cfg, rng, memory_of(gpu));
//   CudaGraphCache graphs;
//   model.stage_queries(ids);                        // host work: checks, masks into pinned staging
//   graphs.run(gpu, ids.rows(), [&](const backend::Cuda& be) {
//       model.score_all_staged(be, pool, scores.view());   // backend work only
//   });
//
// run(be, key, work): the first call for a key runs `work` eagerly (it sizes
// every workspace, so nothing allocates later) and then captures it into a
// graph; later calls launch that graph. What the graph replays is the backend
// work: the uploads from the staging buffers (page-locked, so the copy nodes
// read whatever the host staged last) and the kernels. So a work function must
// be backend work only — the models' *_staged() methods are — and its tensors
// must not move between calls (they do not once a shape has been seen).
// `work` receives `be` with trusted_ids set (the ids were checked when staged;
// no call waits for the device inside the graph). The model's memory must use
// the same stream as `be` (memory_of(gpu)), and that stream must not be the
// legacy default stream (capture is refused there).
//
// Not thread-safe: one cache per serving thread (and stream). A different
// batch size is a different key; keys are the caller's choice (e.g. B, or B
// and the top-k). clear() releases every graph.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <unordered_map>
#include <utility>

#include "recblocks/backend/cuda/cuda.hpp"
#include "recblocks/core/check.hpp"

RECBLOCKS_NAMESPACE_BEGIN

class CudaGraphCache {
public:
    CudaGraphCache() = default;
    CudaGraphCache(const CudaGraphCache&) = delete;
    CudaGraphCache& operator=(const CudaGraphCache&) = delete;
    ~CudaGraphCache() { clear(); }

    /// Runs work(be') as described in the header comment; be' is `be` with trusted_ids.
    template <class Work>
    void run(const backend::Cuda& be, std::uint64_t key, Work&& work) {
        RECBLOCKS_CHECK_VALUE(be.stream != nullptr && be.stream != cudaStreamLegacy,
                              "CudaGraphCache::run: the backend's stream is the legacy default stream, which cannot "
                              "be captured; give backend::Cuda (and the model's memory) a stream of your own");
        backend::Cuda trusted = be;
        trusted.trusted_ids = true;
        if (const auto it = graphs_.find(key); it != graphs_.end()) {
            RECBLOCKS_CUDA_CHECK(cudaGraphLaunch(it->second, be.stream));
            return;
        }
        work(static_cast<const backend::Cuda&>(trusted));  // eager: sizes the workspaces, gives this call's result
        graphs_.emplace(key, capture(trusted, work));
    }

    /// Graphs held (one per key seen).
    [[nodiscard]] std::size_t size() const { return graphs_.size(); }
    /// Releases every graph (the next run of each key captures again).
    void clear() noexcept {
        for (auto& [key, exec] : graphs_) (void)cudaGraphExecDestroy(exec);
        graphs_.clear();
    }

private:
    template <class Work>
    static cudaGraphExec_t capture(const backend::Cuda& be, Work& work) {
        RECBLOCKS_CUDA_CHECK(cudaStreamBeginCapture(be.stream, cudaStreamCaptureModeThreadLocal));
        try {
            work(be);
        } catch (...) {
            cudaGraph_t partial = nullptr;
            (void)cudaStreamEndCapture(be.stream, &partial);  // leave the stream usable
            if (partial != nullptr) (void)cudaGraphDestroy(partial);
            throw;
        }
        cudaGraph_t graph = nullptr;
        RECBLOCKS_CUDA_CHECK(cudaStreamEndCapture(be.stream, &graph));
        cudaGraphExec_t exec = nullptr;
        const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
        (void)cudaGraphDestroy(graph);
        RECBLOCKS_CUDA_CHECK(err);
        return exec;
    }

    std::unordered_map<std::uint64_t, cudaGraphExec_t> graphs_;
};

RECBLOCKS_NAMESPACE_END
