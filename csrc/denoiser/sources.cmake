# The fused-denoiser module `diffpose_fast_denoiser_native` (csrc/denoiser: CPU and CUDA), included from the
# top-level CMakeLists.txt after the main module is configured: it reuses _dpf_with_cuda, DIFFPOSE_FAST_CPU_FLAGS
# and OpenMP from there. A separate module so that older builds of `diffpose_fast_native` stay valid and the
# Python side can say why the fast path is missing (diffpose_fast/ops/denoiser/fused.py::why_not).
pybind11_add_module(diffpose_fast_denoiser_native MODULE
  ${CMAKE_CURRENT_LIST_DIR}/module_denoiser.cpp
  ${CMAKE_CURRENT_LIST_DIR}/denoiser_cpu.cpp)
target_include_directories(diffpose_fast_denoiser_native PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_options(diffpose_fast_denoiser_native PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:-O3 -Wall -Wextra -Wno-unknown-pragmas -fopenmp-simd -fno-math-errno>)
if(DIFFPOSE_FAST_CPU_FLAGS)
  separate_arguments(_dpf_dn_cpu_flags UNIX_COMMAND "${DIFFPOSE_FAST_CPU_FLAGS}")
  target_compile_options(diffpose_fast_denoiser_native PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${_dpf_dn_cpu_flags}>)
endif()
if(OpenMP_CXX_FOUND)
  target_link_libraries(diffpose_fast_denoiser_native PRIVATE OpenMP::OpenMP_CXX)
endif()
if(_dpf_with_cuda)
  target_sources(diffpose_fast_denoiser_native PRIVATE ${CMAKE_CURRENT_LIST_DIR}/denoiser_block.cu)
  set_target_properties(diffpose_fast_denoiser_native PROPERTIES
    CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}" CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
    CUDA_RUNTIME_LIBRARY Static)
  target_compile_options(diffpose_fast_denoiser_native PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3>)
  target_link_libraries(diffpose_fast_denoiser_native PRIVATE CUDA::cudart_static)
  target_compile_definitions(diffpose_fast_denoiser_native PRIVATE DIFFPOSE_FAST_WITH_CUDA=1)
endif()
install(TARGETS diffpose_fast_denoiser_native LIBRARY DESTINATION .)
