// The edge agent API as a part of serve's router (router.hpp), over the agent's drop-in
// (agent.hpp). The edge gateway's proxy agent had these endpoints; its clients keep working:
//
//   POST   /http/routes                {"route_id", "hostname", "target_url", ...}  -> {"ok": true, "route_id"}
//   GET    /http/routes                -> {"ok": true, "routes": {"<route_id>": <body>, ...}}
//   DELETE /http/routes/{route_id}     -> {"ok": true, "route_id", "deleted": true}
//   POST   /tcp/forwards               {"forward_id", "public_port", "target_ip", ...} -> {"ok": true, "forward_id"}
//   GET    /tcp/forwards               -> {"ok": true, "forwards": {"<forward_id>": <body>, ...}}
//   DELETE /tcp/forwards/{forward_id}  -> {"ok": true, "forward_id", "deleted": true}
//
// A POST with the id of an existing entry replaces it ("replaced": true). A change is accepted
// only when the whole configuration with it loads without an error; it is then in the drop-in,
// and the loop is nudged to apply it: this part never touches the device or nftables.
//
// Access: with a token (serve: agent_token_file:), every agent endpoint needs X-Agent-Token
// equal to it (401 otherwise). Without one, the agent endpoints answer only requests whose TCP
// peer is on loopback and that did not come through a proxy (no X-Forwarded-For), 403 otherwise.
// Errors: a wrong method 405 with Allow, a body that is not a request 422, a change the
// configuration refuses 400 with the diagnostics, an unknown id 404; none changes the drop-in.
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "serve/agent.hpp"
#include "serve/router.hpp"

namespace wgf::serve {

class AgentHttp {
public:
    using Log = std::function<void(const std::string&)>;
    // `changed`: called after every accepted change (serve nudges its loop). The token is kept
    // only as a hash; the text handed in is wiped.
    AgentHttp(EdgeAgent& agent, std::optional<std::string> token, std::function<void()> changed, Log info, Log warn);

    // /http/routes... and /tcp/forwards...
    static bool owns(const std::vector<std::string>& seg);
    Response handle(const Request& r);
    // This as a part of the router; it must outlive the router's use of it.
    Part part();

private:
    EdgeAgent& agent_;
    std::optional<std::array<unsigned char, 32>> token_hash_;
    std::function<void()> changed_;
    Log info_, warn_;

    std::optional<Response> refuse_access(const Request& r) const;
    Response list(bool routes);
    Response add(bool routes, const std::string& body);
    Response remove(bool routes, const std::string& id);
    Response outcome(const AgentResult& res, const std::string& what);
};

}  // namespace wgf::serve
