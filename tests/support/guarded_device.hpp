#pragma once
// A device backend for machines without a GPU: rbtest::GuardedDevice computes
// with the Reference backend's primitives, but its memory space says
// `host_accessible = false` and means it — every block it allocates is
// mprotect(PROT_NONE) except while one of its primitives (or one of its
// copies) runs. A component instantiated for it therefore proves, on the CPU,
// what backend::Cuda needs of it:
//   * at compile time, no element access on its tensors from the host
//     (Tensor refuses it for a space that is not host accessible);
//   * at run time, no host loop over its data through a raw view or pointer
//     (that read or write faults: a crash naming the line under a debugger),
//     and every upload/download goes through the memory space.
// So a model test that passes on GuardedDevice runs the same code path that
// backend::Cuda runs, with the oracle's arithmetic.
//
// It also stands in for CUDA graph capture (backend/cuda/graph.hpp): while an
// rbtest::GraphCapture records, primitives and uploads/copies/zeroings are
// recorded instead of run (an upload reads its host source when replayed, as
// a graph's copy node reads page-locked memory), and what a captured CUDA
// stream refuses fails with CaptureError: a primitive that returns a value or
// a download (a host synchronisation), an allocation (workspaces must be sized
// by an eager call first). replay() runs the recording.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "recblocks/backend/memory.hpp"
#include "recblocks/backend/reference/primitives.hpp"

namespace rbtest {

/// Every live guarded block and whether the host may touch them right now.
class GuardRegistry {
public:
    static GuardRegistry& get() {
        static GuardRegistry r;
        return r;
    }
    void* allocate(std::size_t bytes) {
        const std::size_t size = round(bytes);
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();  // fresh anonymous pages are zero
        std::lock_guard lock(mutex_);
        blocks_.emplace(p, size);
        if (open_ == 0) protect(p, size, PROT_NONE);
        return p;
    }
    void deallocate(void* p) noexcept {
        std::lock_guard lock(mutex_);
        const auto it = blocks_.find(p);
        if (it == blocks_.end()) return;
        ::munmap(p, it->second);
        blocks_.erase(it);
    }
    void open() {
        std::lock_guard lock(mutex_);
        if (open_++ == 0)
            for (const auto& [p, size] : blocks_) protect(p, size, PROT_READ | PROT_WRITE);
    }
    void close() {
        std::lock_guard lock(mutex_);
        if (--open_ == 0)
            for (const auto& [p, size] : blocks_) protect(p, size, PROT_NONE);
    }
    /// How many blocks are live (a test can check that a component allocates there).
    std::size_t live_blocks() {
        std::lock_guard lock(mutex_);
        return blocks_.size();
    }

private:
    static std::size_t round(std::size_t bytes) {
        const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        return (bytes + page - 1) / page * page;
    }
    static void protect(void* p, std::size_t size, int prot) {
        if (::mprotect(p, size, prot) != 0) throw std::bad_alloc();
    }
    std::mutex mutex_;
    std::unordered_map<void*, std::size_t> blocks_;
    int open_ = 0;
};

/// What a captured CUDA stream would refuse.
struct CaptureError : std::logic_error {
    using std::logic_error::logic_error;
};

/// A recording of device work (the stand-in for a CUDA graph).
class GraphCapture {
public:
    GraphCapture() = default;
    GraphCapture(const GraphCapture&) = delete;
    GraphCapture& operator=(const GraphCapture&) = delete;
    /// Records (instead of running) every device operation of `work()` on this thread.
    template <class F>
    void capture(F&& work) {
        ops_.clear();
        active() = this;
        try {
            work();
        } catch (...) {
            active() = nullptr;
            throw;
        }
        active() = nullptr;
    }
    /// Runs the recorded operations in order.
    void replay() const {
        for (const auto& op : ops_) op();
    }
    [[nodiscard]] std::size_t size() const { return ops_.size(); }

    /// The recording of this thread, or nullptr.
    static GraphCapture*& active() {
        thread_local GraphCapture* a = nullptr;
        return a;
    }
    void record(std::function<void()> op) { ops_.push_back(std::move(op)); }

private:
    std::vector<std::function<void()>> ops_;
};

/// Throws CaptureError when a recording is active.
inline void refuse_in_capture(const std::string& what) {
    if (GraphCapture::active() != nullptr)
        throw CaptureError(what + " inside a captured call (a CUDA graph cannot capture it)");
}

/// While alive, the host may touch guarded memory (a primitive or a copy is running).
struct DeviceAccess {
    DeviceAccess() { GuardRegistry::get().open(); }
    ~DeviceAccess() { GuardRegistry::get().close(); }
    DeviceAccess(const DeviceAccess&) = delete;
    DeviceAccess& operator=(const DeviceAccess&) = delete;
};

/// The memory space: page-granular, zero-filled, no host access outside a primitive.
struct GuardedMemory {
    static constexpr bool host_accessible = false;
    [[nodiscard]] void* allocate(std::size_t bytes) const {
        refuse_in_capture("an allocation of " + std::to_string(bytes) + " bytes");
        return GuardRegistry::get().allocate(bytes ? bytes : 1);
    }
    void deallocate(void* p, std::size_t) const noexcept { GuardRegistry::get().deallocate(p); }
    void zero(void* p, std::size_t bytes) const {
        if (auto* g = GraphCapture::active()) return g->record([=] { zero_now(p, bytes); });
        zero_now(p, bytes);
    }
    void copy(void* dst, const void* src, std::size_t bytes) const { copy_or_record(dst, src, bytes); }
    void upload(void* dst, const void* host, std::size_t bytes) const { copy_or_record(dst, host, bytes); }
    void download(void* host, const void* src, std::size_t bytes) const {
        refuse_in_capture("a download (a host synchronisation)");
        copy_now(host, src, bytes);
    }
    bool operator==(const GuardedMemory&) const = default;

private:
    static void zero_now(void* p, std::size_t bytes) {
        DeviceAccess open;
        if (bytes) std::memset(p, 0, bytes);
    }
    static void copy_now(void* dst, const void* src, std::size_t bytes) {
        DeviceAccess open;
        if (bytes) std::memmove(dst, src, bytes);
    }
    static void copy_or_record(void* dst, const void* src, std::size_t bytes) {
        if (auto* g = GraphCapture::active()) return g->record([=] { copy_now(dst, src, bytes); });
        copy_now(dst, src, bytes);
    }
};
static_assert(recblocks::MemorySpace<GuardedMemory>);

/// The backend tag.
struct GuardedDevice {};

}  // namespace rbtest

RECBLOCKS_NAMESPACE_BEGIN

template <>
struct BackendMemory<rbtest::GuardedDevice> {
    using type = rbtest::GuardedMemory;
    static rbtest::GuardedMemory of(const rbtest::GuardedDevice&) { return {}; }
};

// Every primitive of the Reference backend, called with the guard open. Each
// name gets two forwarders: `Primitives<G>::template f<T>(...)` (the common
// form) and `Primitives<G>::f(...)` (primitives whose types are deduced). The
// return types are SFINAE-friendly, so the ops:: `has_*` concepts see exactly
// the Reference's families. While a GraphCapture records, a primitive that
// returns nothing is recorded (its arguments — views and values — copied) and
// one that returns a value is refused.
#define RBTEST_GUARDED_CALL(name, call)                                                          \
    using R = decltype(call);                                                                    \
    if (rbtest::GraphCapture::active() != nullptr) {                                             \
        if constexpr (std::is_void_v<R>) {                                                       \
            rbtest::GraphCapture::active()->record([... a = std::decay_t<A>(a)]() mutable {      \
                rbtest::DeviceAccess open;                                                       \
                call;                                                                            \
            });                                                                                  \
            return;                                                                              \
        } else {                                                                                 \
            rbtest::refuse_in_capture("primitive " #name ", which returns a value (a host synchronisation),"); \
        }                                                                                        \
    }                                                                                            \
    rbtest::DeviceAccess open;                                                                   \
    return call;

#define RBTEST_GUARDED_FORWARD(name)                                                             \
    template <class X, class... A>                                                               \
    static auto name(const rbtest::GuardedDevice&, A&&... a)                                     \
        -> decltype(Primitives<Inner>::template name<X>(Inner{}, std::forward<A>(a)...)) {       \
        RBTEST_GUARDED_CALL(name, Primitives<Inner>::template name<X>(Inner{}, a...))           \
    }                                                                                            \
    template <class... A>                                                                        \
    static auto name(const rbtest::GuardedDevice&, A&&... a)                                     \
        -> decltype(Primitives<Inner>::name(Inner{}, std::forward<A>(a)...)) {                   \
        RBTEST_GUARDED_CALL(name, Primitives<Inner>::name(Inner{}, a...))                       \
    }

// A query of sizes only (no device data): runs even while capturing.
#define RBTEST_GUARDED_QUERY(name)                                                               \
    template <class X, class... A>                                                               \
    static auto name(const rbtest::GuardedDevice&, A&&... a)                                     \
        -> decltype(Primitives<Inner>::template name<X>(Inner{}, std::forward<A>(a)...)) {       \
        return Primitives<Inner>::template name<X>(Inner{}, std::forward<A>(a)...);              \
    }

template <>
struct Primitives<rbtest::GuardedDevice> {
    using Inner = backend::Reference;
    RBTEST_GUARDED_FORWARD(gemm)
    RBTEST_GUARDED_FORWARD(gemm_batched)
    RBTEST_GUARDED_FORWARD(dot)
    RBTEST_GUARDED_FORWARD(axpy)
    RBTEST_GUARDED_FORWARD(add)
    RBTEST_GUARDED_FORWARD(copy)
    RBTEST_GUARDED_FORWARD(broadcast_rows)
    RBTEST_GUARDED_FORWARD(scale_rows)
    RBTEST_GUARDED_FORWARD(gate_by_nonzero)
    RBTEST_GUARDED_FORWARD(row_dots)
    RBTEST_GUARDED_FORWARD(logistic_loss)
    RBTEST_GUARDED_FORWARD(softmax_cross_entropy)
    RBTEST_GUARDED_QUERY(attention_state_size)
    RBTEST_GUARDED_FORWARD(attention_forward)
    RBTEST_GUARDED_FORWARD(attention_backward)
    RBTEST_GUARDED_FORWARD(adam_update)
    RBTEST_GUARDED_FORWARD(dropout)
    RBTEST_GUARDED_FORWARD(softmax_rows)
    RBTEST_GUARDED_FORWARD(softmax_rows_backward)
    RBTEST_GUARDED_FORWARD(layer_norm_forward)
    RBTEST_GUARDED_FORWARD(layer_norm_backward)
    RBTEST_GUARDED_FORWARD(activation_forward)
    RBTEST_GUARDED_FORWARD(activation_backward)
    RBTEST_GUARDED_FORWARD(gather_rows)
    RBTEST_GUARDED_FORWARD(scatter_add_rows)
    RBTEST_GUARDED_FORWARD(top_k_rows)
    RBTEST_GUARDED_FORWARD(sum)
    RBTEST_GUARDED_FORWARD(max_value)
    RBTEST_GUARDED_FORWARD(sum_rows)
    RBTEST_GUARDED_FORWARD(gathered_dot)
    RBTEST_GUARDED_FORWARD(squared_distances)
    RBTEST_GUARDED_FORWARD(shifted_argmin_rows)
    RBTEST_GUARDED_FORWARD(mean_by_label)
    RBTEST_GUARDED_FORWARD(exact_top_k)
    RBTEST_GUARDED_FORWARD(rerank_top_k)
    RBTEST_GUARDED_FORWARD(max_sim_scores)
    RBTEST_GUARDED_FORWARD(multiply)
    RBTEST_GUARDED_FORWARD(bce_with_logits)
    RBTEST_GUARDED_FORWARD(search_segments)
    RBTEST_GUARDED_FORWARD(attend_rows)
    RBTEST_GUARDED_FORWARD(attend_rows_backward)
};

#undef RBTEST_GUARDED_FORWARD
#undef RBTEST_GUARDED_QUERY
#undef RBTEST_GUARDED_CALL

RECBLOCKS_NAMESPACE_END
