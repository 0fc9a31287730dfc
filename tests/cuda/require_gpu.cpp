// recblocks_cuda_tests runs only where a CUDA device exists. tests/main.cpp
// calls this hook before any test: 77 (CTest's SKIP_RETURN_CODE) means
// "skipped", so a build machine without a GPU reports the suite as skipped
// rather than failed.
#include <cstdio>

#include <cuda_runtime_api.h>

#include "recblocks/backend/cuda/cuda.hpp"

extern "C" int recblocks_test_precheck() {
    if (recblocks::cuda_device_count() == 0) {
        std::printf("recblocks_cuda_tests: no CUDA device; skipped\n");
        std::fflush(stdout);
        return 77;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        std::printf("recblocks_cuda_tests: device 0 is %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    return 0;
}
