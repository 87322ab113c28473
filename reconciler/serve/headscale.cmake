# The Headscale source of `wg-fleet serve` (beside cli/, linked downward only): wgf_headscale is
# pure (the API's JSON, the node mapping, the read side's answers); wgf_headscale_client polls
# the server over HTTP (cpp-httplib) and keeps the mapping and the nodes' keys in state_dir.
if(NOT TARGET PkgConfig::HTTPLIB)
  pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
endif()
add_library(wgf_headscale STATIC ${CMAKE_CURRENT_LIST_DIR}/headscale.cpp)
target_link_libraries(wgf_headscale PUBLIC wgf_serve_store wgf_plan wgf_backend wgf_model PRIVATE nlohmann_json::nlohmann_json fmt::fmt)
add_library(wgf_headscale_client STATIC ${CMAKE_CURRENT_LIST_DIR}/headscale_client.cpp)
target_link_libraries(wgf_headscale_client PUBLIC wgf_headscale PRIVATE wgf_system wgf_linux PkgConfig::HTTPLIB PkgConfig::SODIUM fmt::fmt)
# wgf_headscale_serve: the source inside `wg-fleet serve` (its polling thread, its HTTP part).
add_library(wgf_headscale_serve STATIC ${CMAKE_CURRENT_LIST_DIR}/headscale_source.cpp)
target_link_libraries(wgf_headscale_serve PUBLIC wgf_headscale_client wgf_serve wgf_inputs PRIVATE PkgConfig::SODIUM nlohmann_json::nlohmann_json fmt::fmt Threads::Threads)
