# BPF build: compiles bpf/file_events.bpf.c for the BPF target with clang, links it with
# bpftool (which keeps BTF and drops DWARF), generates the libbpf skeleton into the build tree
# and adds the BPF watcher to a target. Nothing generated is written into the source tree.
#
#   bt_add_bpf(<target>)   compile, skeleton, include dir, libbpf, src/watch/watch_bpf*.c

find_program(BT_CLANG NAMES clang REQUIRED)
find_program(BT_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  set(BT_BPF_ARCH x86)
else()
  message(FATAL_ERROR "BT_BPF: no bpf/vmlinux/<arch>/vmlinux.h for ${CMAKE_SYSTEM_PROCESSOR}; "
                      "configure with -DBT_BPF=OFF or add one (see bpf/vmlinux/README.md)")
endif()

function(bt_add_bpf target)
  set(src ${CMAKE_SOURCE_DIR}/bpf/file_events.bpf.c)
  set(gen ${CMAKE_BINARY_DIR}/bpf)
  set(obj ${gen}/file_events.bpf.o)
  set(skel ${gen}/file_events.skel.h)
  file(MAKE_DIRECTORY ${gen})
  add_custom_command(OUTPUT ${obj}
    COMMAND ${BT_CLANG} -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_${BT_BPF_ARCH}
            -I${CMAKE_SOURCE_DIR}/bpf -I${CMAKE_SOURCE_DIR}/bpf/vmlinux/${BT_BPF_ARCH}
            -c ${src} -o ${gen}/file_events.tmp.o
    COMMAND ${BT_BPFTOOL} gen object ${obj} ${gen}/file_events.tmp.o
    DEPENDS ${src} ${CMAKE_SOURCE_DIR}/bpf/file_events.h
    COMMENT "BPF: compiling file_events.bpf.c"
    VERBATIM)
  # The redirection needs the shell, hence no VERBATIM here.
  add_custom_command(OUTPUT ${skel}
    COMMAND ${BT_BPFTOOL} gen skeleton ${obj} name file_events_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF: generating file_events.skel.h")
  add_custom_target(bt_bpf_skel DEPENDS ${skel})
  add_dependencies(${target} bt_bpf_skel)
  target_sources(${target} PRIVATE ${CMAKE_SOURCE_DIR}/src/watch/watch_bpf.c
                                   ${CMAKE_SOURCE_DIR}/src/watch/watch_bpf_events.c)
  target_include_directories(${target} PRIVATE ${gen} ${CMAKE_SOURCE_DIR}/bpf)
  target_link_libraries(${target} PUBLIC PkgConfig::LIBBPF)
  target_compile_definitions(${target} PUBLIC BT_HAVE_BPF=1)
endfunction()

# The BPF benchmark (bench/bpf_bench.c): overhead per write, write->wake latency, idle cost.
# It uses the test Loki server from tests/helpers, hence only with the tests.
if(BT_TESTS AND EXISTS ${CMAKE_SOURCE_DIR}/bench/bpf_bench.c)
  add_executable(bpf_bench ${CMAKE_SOURCE_DIR}/bench/bpf_bench.c)
  set_target_properties(bpf_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
  target_compile_options(bpf_bench PRIVATE ${BT_WARNINGS})
  target_link_libraries(bpf_bench PRIVATE bttesthelpers btcore)
endif()
