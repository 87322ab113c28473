#!/usr/bin/env python3
"""Runs examples/ci/github-workflow.yml as GitHub Actions would, against the built wg-fleet.

Every `run:` step of its job runs in order, as shipped: with bash as GitHub starts it
(`bash --noprofile --norc -eo pipefail`), in the repository's root, with the workflow's and the
job's `env:`, and `wg-fleet` on PATH being the binary under test. Only SANDBOX is changed, to a
name unique to this run. `uses:` steps (checkouts) are not run: the checkout is this source tree,
and the install step finds wg-fleet on PATH and installs nothing. After a failed step only
`if: always()` steps run, as on GitHub; the sandbox is removed in any case.
Beyond every step passing, the test checks the workflow still does what examples/ci promises
(check, sandbox up, plan --detailed-exitcode on every node, sandbox test, sandbox down), and that
the plan step reached every node of the fleet.

Usage: check_workflow.py WG_FLEET_BINARY SOURCE_DIR   (root: network namespaces)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

BIN, SRC = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
WORKFLOW = os.path.join(SRC, "examples", "ci", "github-workflow.yml")


def main():
    if os.geteuid() != 0:
        print("SKIP: the workflow's sandbox needs root (network namespaces)")
        return 77
    wf = yaml.safe_load(open(WORKFLOW))
    if len(wf["jobs"]) != 1:
        print(f"FAIL: {len(wf['jobs'])} jobs; this test runs one")
        return 1
    (job_name, job), = wf["jobs"].items()
    shell = (job.get("defaults") or wf.get("defaults") or {}).get("run", {}).get("shell")
    if shell != "bash":
        print(f"FAIL: the job's default shell is {shell!r}; the test runs bash as GitHub does")
        return 1
    sandbox = f"ci{os.getpid()}"
    failures = []
    with tempfile.TemporaryDirectory(prefix="wgf-ci-workflow-") as tmp:
        bindir = os.path.join(tmp, "bin")
        os.mkdir(bindir)
        os.symlink(BIN, os.path.join(bindir, "wg-fleet"))
        env = dict(os.environ)
        env.update({k: str(v) for k, v in (wf.get("env") or {}).items()})
        env.update({k: str(v) for k, v in (job.get("env") or {}).items()})
        if "SANDBOX" not in env:
            print("FAIL: the workflow names its sandbox nowhere (env SANDBOX)")
            return 1
        env.update({"SANDBOX": sandbox, "PATH": bindir + os.pathsep + env["PATH"], "CI": "true",
                    "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": SRC})
        ran, failed, outputs = [], False, {}
        try:
            for i, step in enumerate(job["steps"]):
                name = step.get("name") or step.get("run", step.get("uses", "")).split("\n")[0]
                if "uses" in step:
                    print(f"-- skip  {name} (action {step['uses']}: this source tree is the checkout)")
                    continue
                cond = step.get("if")
                if cond not in (None, "always()"):
                    failures.append(f"step {name!r}: condition {cond!r} is not one this test evaluates")
                    continue
                if failed and cond != "always()":
                    print(f"-- skip  {name} (an earlier step failed)")
                    continue
                script = step["run"]
                if "${{" in script or any("${{" in str(v) for v in (step.get("env") or {}).values()):
                    failures.append(f"step {name!r}: an expression (${{{{ }}}}) the test cannot evaluate in a run step")
                    failed = True
                    continue
                path = os.path.join(tmp, f"step{i}.sh")
                with open(path, "w") as f:
                    f.write(script)
                step_env = dict(env)
                step_env.update({k: str(v) for k, v in (step.get("env") or {}).items()})
                print(f"-- run   {name}", flush=True)
                p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", path], cwd=SRC, env=step_env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                sys.stdout.write(p.stdout)
                outputs[name] = p.stdout
                ran.append(script)
                if p.returncode != 0:
                    failures.append(f"step {name!r} exited {p.returncode}")
                    failed = True
        finally:
            subprocess.run([BIN, "sandbox", "down", "--name", sandbox], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        # What the workflow must do, in this order.
        text = "\n".join(s["run"] for s in job["steps"] if "run" in s)
        want = [r"wg-fleet\b.* check\b", r"wg-fleet sandbox up\b", r"wg-fleet plan --detailed-exitcode",
                r"wg-fleet sandbox test\b", r"wg-fleet sandbox down\b"]
        pos = 0
        for w in want:
            m = re.compile(w).search(text, pos)
            if not m:
                failures.append(f"no run step does /{w}/ after the ones before it")
                continue
            pos = m.end()
        # The plan step reached every node of the fleet.
        fleet = os.path.join(SRC, env["FLEET"])
        plan = json.loads(subprocess.run([BIN, "-q", "-c", fleet, "addresses", "--json"], capture_output=True, text=True,
                                         check=True).stdout)
        nodes = sorted({n for f in plan["fleets"].values() for n in f["nodes"]})
        step = next((n for n, s in zip(outputs, ran) if "--detailed-exitcode" in s), None)
        seen = re.findall(r"^== (\S+)$", outputs.get(step, ""), re.M)
        if not failed and sorted(seen) != nodes:
            failures.append(f"the plan step ran on {sorted(seen)}, the fleet has {nodes}")
    for f in failures:
        print("FAIL", f)
    print(f"workflow job {job_name!r}: {len(ran)} run steps, sandbox {sandbox}; {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
