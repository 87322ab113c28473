// libnl's own error codes mapped back to errno, for every libnl user in this layer.
#pragma once

namespace wgf::linux_ {

// libnl folds the kernel's errno into its own codes (nl_syserr2nlerr); this is the way back for
// errors that did not come with the kernel's exact errno. 0 for codes with no errno equivalent.
int nlerr_to_errno(int nlerr);

}  // namespace wgf::linux_
