// overloaded{lambdas...}: one visitor for std::visit from a lambda per alternative.
#pragma once

namespace wgf::model {

template <class... Ts>
struct overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

}  // namespace wgf::model
