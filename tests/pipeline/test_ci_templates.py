#!/usr/bin/python3
"""test_ci_templates.py — the CI templates in ci/ are well-formed and call ferry correctly:
the YAML files parse, their stages run build → validate → publish → promote in that order,
every shell block passes `bash -n`, the Jenkinsfile's brackets balance and its stages are in
order, and every `ferry CMD --option` they use is an option `ferry CMD --help` documents.

usage: test_ci_templates.py FERRY SOURCE_DIR
"""
import os
import re
import subprocess
import sys

import yaml

FERRY, SRC = sys.argv[1], sys.argv[2]
CI = os.path.join(SRC, "ci")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def bash_syntax(script, where):
    """bash -n on a shell block, with CI expressions (${{ ... }}) replaced by a word."""
    script = re.sub(r"\$\{\{.*?\}\}", "X", script)
    r = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    check(r.returncode == 0, f"{where}: bash -n: {r.stderr.strip()}")


def ferry_calls(text):
    """(command, [--options]) for every ferry invocation, backslash continuations joined."""
    text = re.sub(r"\\\n", " ", text)
    calls = []
    for m in re.finditer(r"(?:^|[\s/(\"'])ferry (validate|publish|promote|rollback|versions|verify)\b([^\n]*)", text):
        opts = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(2))
        calls.append((m.group(1), opts))
    return calls


def check_ferry_options(text, where):
    calls = ferry_calls(text)
    check(len(calls) >= 5, f"{where}: expected ferry validate/publish/promote/... calls, found {len(calls)}")
    helps = {}
    for cmd, opts in calls:
        if cmd not in helps:
            r = subprocess.run([FERRY, cmd, "--help"], capture_output=True, text=True)
            check(r.returncode == 0, f"ferry {cmd} --help failed")
            helps[cmd] = r.stdout
        for o in opts:
            check(re.search(re.escape(o) + r"\b", helps[cmd]) is not None,
                  f"{where}: ferry {cmd} has no option {o}")
    return {c for c, _ in calls}


def github():
    path = os.path.join(CI, "github-actions.yml")
    text = open(path).read()
    d = yaml.safe_load(text)
    on = d.get("on", d.get(True))  # YAML 1.1 reads a bare `on` key as true
    check(isinstance(on, dict) and "pull_request" in on and "push" in on,
          "github: triggers on pull_request and push")
    jobs = d["jobs"]
    chain = [("validate", "build"), ("publish", "validate"), ("promote", "publish")]
    for job, need in chain:
        needs = jobs[job].get("needs")
        needs = [needs] if isinstance(needs, str) else needs
        check(need in (needs or []), f"github: {job} needs {need}")
    for name, job in jobs.items():
        check("runs-on" in job, f"github: {name} has runs-on")
        for i, step in enumerate(job["steps"]):
            check(("uses" in step) != ("run" in step), f"github: {name} step {i}: uses xor run")
            if "run" in step:
                bash_syntax(step["run"], f"github {name} step {i}")
    check("GITHUB_STEP_SUMMARY" in text, "github: report goes to the job summary")
    check("gh pr comment" in text, "github: report is posted as a PR comment")
    check(jobs["promote"].get("environment") == "production", "github: promote needs approval")
    cmds = check_ferry_options(text, "github")
    check({"validate", "publish", "promote", "rollback"} <= cmds, "github: all stages call ferry")


def gitlab():
    path = os.path.join(CI, "gitlab-ci.yml")
    text = open(path).read()
    d = yaml.safe_load(text)
    stages = d["stages"]
    check(stages == ["build", "validate", "publish", "promote"], f"gitlab: stages {stages}")
    jobs = {k: v for k, v in d.items() if isinstance(v, dict) and "script" in v}
    for name, job in jobs.items():
        check(job.get("stage") in stages, f"gitlab: {name} has a known stage")
        for need in job.get("needs", []):
            check(stages.index(jobs[need]["stage"]) <= stages.index(job["stage"]),
                  f"gitlab: {name} needs {need} from a later stage")
        bash_syntax("\n".join(job["script"]), f"gitlab {name}")
    check(jobs["validate"]["artifacts"]["when"] == "always", "gitlab: reports kept on failure")
    check("report.md" in jobs["validate"]["artifacts"]["paths"], "gitlab: report.md is an artifact")
    check("merge_requests/$CI_MERGE_REQUEST_IID/notes" in text, "gitlab: MR note via the API")
    check(any(r.get("when") == "manual" for r in jobs["promote"]["rules"]), "gitlab: manual promote")
    cmds = check_ferry_options(text, "gitlab")
    check({"validate", "publish", "promote", "rollback"} <= cmds, "gitlab: all stages call ferry")


def strip_groovy(text):
    """Text with strings and comments blanked, for bracket matching."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif text.startswith("'''", i) or text.startswith('"""', i):
            q = text[i:i + 3]
            i = text.index(q, i + 3) + 3
            out.append("S")
        elif text[i] in "'\"":
            q, j = text[i], i + 1
            while text[j] != q:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append("S")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def jenkins():
    path = os.path.join(CI, "Jenkinsfile")
    text = open(path).read()
    code = strip_groovy(text)
    stack, pairs = [], {")": "(", "}": "{", "]": "["}
    for ch in code:
        if ch in "({[":
            stack.append(ch)
        elif ch in pairs:
            check(stack and stack[-1] == pairs[ch], "jenkins: brackets balance")
            if stack:
                stack.pop()
    check(not stack, "jenkins: every bracket is closed")
    check(code.lstrip().startswith("pipeline"), "jenkins: declarative pipeline")
    stages = re.findall(r"stage\('([^']+)'\)", text)
    order = [s for s in stages if s in ("Build", "Validate", "Publish", "Promote")]
    check(order == ["Build", "Validate", "Publish", "Promote"], f"jenkins: stage order {stages}")
    for what in ("archiveArtifacts", "publishHTML", "pullRequest.comment", "input message"):
        check(what in text, f"jenkins: uses {what}")
    for i, block in enumerate(re.findall(r"'''(.*?)'''", text, re.S)):
        bash_syntax(block.replace("\\\n", " "), f"jenkins block {i}")
    for i, line in enumerate(re.findall(r"\bsh '([^']*)'", text)):
        bash_syntax(line, f"jenkins sh {i}")
    cmds = check_ferry_options(text, "jenkins")
    check({"validate", "publish", "promote", "rollback"} <= cmds, "jenkins: all stages call ferry")


for f in (github, gitlab, jenkins):
    try:
        f()
    except Exception as e:  # a missing key is a malformed template, reported like the rest
        failures.append(f"{f.__name__}: {type(e).__name__}: {e}")

if failures:
    print("FAIL\n" + "\n".join(failures))
    sys.exit(1)
print("ci templates: GitHub Actions, GitLab CI and Jenkinsfile check out")
