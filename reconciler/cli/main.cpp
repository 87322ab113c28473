// wg-fleet: every command, in the order --help lists them.
#include "cli/app.hpp"
#include "cli/commands.hpp"
#include "sandbox/sandbox.hpp"

int main(int argc, char** argv) {
    using namespace wgf::cli;
    static constexpr AddCommand kCommands[] = {add_check,  add_addresses, add_render, add_plan,  add_apply, add_confirm,
                                               add_status, add_keygen,    add_rotate, add_watch, add_serve, wgf::sandbox::add_command,
                                               add_version};
    return run(std::vector<std::string>(argv + 1, argv + argc), {}, kCommands);
}
