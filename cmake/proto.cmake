# Generates the protobuf-c sources for proto/*.proto into the build tree.
find_program(PROTOC_C protoc-c REQUIRED)
set(BT_PROTO_DIR ${CMAKE_BINARY_DIR}/proto)
file(MAKE_DIRECTORY ${BT_PROTO_DIR})
set(BT_PROTO_SOURCES)
file(GLOB BT_PROTO_FILES ${CMAKE_SOURCE_DIR}/proto/*.proto)
foreach(p ${BT_PROTO_FILES})
  get_filename_component(stem ${p} NAME_WE)
  set(out_c ${BT_PROTO_DIR}/${stem}.pb-c.c)
  set(out_h ${BT_PROTO_DIR}/${stem}.pb-c.h)
  add_custom_command(OUTPUT ${out_c} ${out_h}
    COMMAND ${PROTOC_C} --proto_path=${CMAKE_SOURCE_DIR}/proto --c_out=${BT_PROTO_DIR} ${p}
    DEPENDS ${p} COMMENT "protoc-c ${stem}.proto")
  list(APPEND BT_PROTO_SOURCES ${out_c})
endforeach()
