#include "linux/nl_errno.hpp"

#include <netlink/errno.h>

#include <cerrno>

namespace wgf::linux_ {

int nlerr_to_errno(int nlerr) {
    switch (nlerr < 0 ? -nlerr : nlerr) {
        case NLE_INTR: return EINTR;
        case NLE_BAD_SOCK: return EBADF;
        case NLE_AGAIN: return EAGAIN;
        case NLE_NOMEM: return ENOMEM;
        case NLE_EXIST: return EEXIST;
        case NLE_INVAL: return EINVAL;
        case NLE_RANGE: return ERANGE;
        case NLE_MSGSIZE: return EMSGSIZE;
        case NLE_OPNOTSUPP: return EOPNOTSUPP;
        case NLE_AF_NOSUPPORT: return EAFNOSUPPORT;
        case NLE_OBJ_NOTFOUND:
        case NLE_NOATTR: return ENOENT;
        case NLE_NOADDR: return EADDRNOTAVAIL;
        case NLE_SRCRT_NOSUPPORT: return EOPNOTSUPP;
        case NLE_MSG_TOOSHORT:
        case NLE_MSG_TRUNC: return EMSGSIZE;
        case NLE_SEQ_MISMATCH: return EPROTO;
        case NLE_MSG_OVERFLOW: return ENOBUFS;
        case NLE_NOACCESS: return EACCES;
        case NLE_PERM: return EPERM;
        case NLE_PKTLOC_FILE: return ENOENT;
        case NLE_PARSE_ERR: return EINVAL;
        case NLE_NODEV: return ENODEV;
        case NLE_IMMUTABLE: return EINVAL;
        case NLE_DUMP_INTR: return EINTR;
        case NLE_BUSY: return EBUSY;
        case NLE_PROTO_MISMATCH: return EPROTONOSUPPORT;
        default: return 0;
    }
}

}  // namespace wgf::linux_
