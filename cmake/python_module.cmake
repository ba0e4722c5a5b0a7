# The Python package's native half: libunirt_core.so and the nanobind module _unirt beside it
# (RPATH $ORIGIN), installed into the package folder unirt/ by scikit-build-core (pip install .).
set(UNIRT_CORE_LIBRARY "" CACHE FILEPATH "An existing libunirt_core.so: build only the Python module, against it")

if(UNIRT_PYTHON STREQUAL "OFF")
  return()
endif()
# Development.SABIModule: nanobind's stable-ABI build (one module for Python 3.12 and later).
find_package(Python 3.9 COMPONENTS Interpreter Development.Module OPTIONAL_COMPONENTS Development.SABIModule)
set(_unirt_nb_dir "")
if(Python_FOUND)
  execute_process(COMMAND "${Python_EXECUTABLE}" -m nanobind --cmake_dir OUTPUT_VARIABLE _unirt_nb_dir
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _unirt_nb_rc)
  if(NOT _unirt_nb_rc EQUAL 0)
    set(_unirt_nb_dir "")
  endif()
endif()
if(NOT _unirt_nb_dir)
  if(UNIRT_PYTHON STREQUAL "ON")
    message(FATAL_ERROR "UNIRT_PYTHON=ON but nanobind is not importable by ${Python_EXECUTABLE} (pip install nanobind)")
  endif()
  message(STATUS "unirt Python module: OFF (nanobind not importable)")
  return()
endif()
find_package(nanobind CONFIG REQUIRED PATHS "${_unirt_nb_dir}" NO_DEFAULT_PATH)
message(STATUS "unirt Python module: ON (Python ${Python_VERSION}, nanobind in ${_unirt_nb_dir})")

set(_unirt_pkg_out ${CMAKE_BINARY_DIR}/python/unirt)
if(UNIRT_CORE_LIBRARY)
  # A copy beside the module, where its RPATH ($ORIGIN) finds it (and the stub generator too).
  file(COPY "${UNIRT_CORE_LIBRARY}" DESTINATION "${_unirt_pkg_out}")
  add_library(unirt_core SHARED IMPORTED)
  set_target_properties(unirt_core PROPERTIES IMPORTED_LOCATION "${_unirt_pkg_out}/libunirt_core.so")
else()
  # Everything the CLI links, as one shared library: the backends' objects (their kernels register
  # themselves statically) and the whole of each stage's archive.
  set(_unirt_core_objs $<TARGET_OBJECTS:unirt_cpu>)
  if(UNIRT_HAVE_CUDA)
    list(APPEND _unirt_core_objs $<TARGET_OBJECTS:unirt_cuda>)
  endif()
  add_library(unirt_core SHARED ${_unirt_core_objs})
  # Debian's libprotobuf.a uses local-exec TLS, which a shared object cannot hold: the core links
  # the shared libprotobuf, shipped beside it in the package (see the install rules).
  find_library(PROTOBUF_SHARED NAMES libprotobuf.so REQUIRED)
  get_filename_component(_unirt_pb_real "${PROTOBUF_SHARED}" REALPATH)
  target_link_libraries(unirt_core PRIVATE
    -Wl,--whole-archive unirt_tools unirt_runtime unirt_passes unirt_onnx unirt_backend unirt_ir -Wl,--no-whole-archive
    ${PROTOBUF_SHARED} ${OPENBLAS_LIB} OpenMP::OpenMP_CXX Threads::Threads)
  if(UNIRT_HAVE_CUDA)
    target_link_libraries(unirt_core PRIVATE CUDA::cudart CUDA::cublasLt CUDA::cublas ${CUDNN_LIB})
  endif()
  set_target_properties(unirt_core PROPERTIES BUILD_RPATH "\$ORIGIN" INSTALL_RPATH "\$ORIGIN")
  # A reference the linker cannot resolve inside the library is an error here, not at import.
  target_link_options(unirt_core PRIVATE -Wl,--no-undefined)
endif()

nanobind_add_module(_unirt STABLE_ABI NB_STATIC python/ext/unirt_module.cpp)
target_include_directories(_unirt PRIVATE src tools ${CLI11_INCLUDE} ${JSON_INCLUDE} ${STB_INCLUDE})
target_compile_definitions(_unirt PRIVATE $<$<BOOL:${UNIRT_HAVE_CUDA}>:UNIRT_HAVE_CUDA=1>)
target_link_libraries(_unirt PRIVATE unirt_core)
set_target_properties(_unirt PROPERTIES BUILD_RPATH "\$ORIGIN" INSTALL_RPATH "\$ORIGIN")
# The module and the core side by side in <build>/python/unirt, so tests can import the package
# from the source tree with that folder on unirt's __path__ (python/unirt/__init__.py).
set_target_properties(_unirt PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${_unirt_pkg_out})
if(NOT UNIRT_CORE_LIBRARY)
  set_target_properties(unirt_core PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${_unirt_pkg_out})
endif()
# Type stubs from the module itself (nanobind's stubgen), shipped with the package.
nanobind_add_stub(_unirt_stub MODULE _unirt OUTPUT ${_unirt_pkg_out}/_unirt.pyi
                  PYTHON_PATH ${_unirt_pkg_out} DEPENDS _unirt)

install(TARGETS _unirt LIBRARY DESTINATION unirt)
if(NOT UNIRT_CORE_LIBRARY)
  install(TARGETS unirt_core LIBRARY DESTINATION unirt)
  install(TARGETS unirt RUNTIME DESTINATION unirt/bin)
endif()
install(FILES ${_unirt_pkg_out}/_unirt.pyi DESTINATION unirt)
install(FILES assets/imagenet_labels.txt assets/coco_labels.txt DESTINATION unirt/assets)
