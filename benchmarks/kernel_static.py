"""Static performance of the CUDA kernels on sm_90, read from their machine code: no GPU.

    python -m benchmarks.kernel_static [--before main] [--arch 90] [--only TEXT ...]
                                       [--out benchmarks/results]

Every entry point of kernels/*.cu is compiled as the run-time path compiles it (NVRTC
with cupy's options: tinygen.backend.cuda_kernels.codegen), once for the kernels of the
git revision ``--before`` (default ``main``: ``git show main:kernels/...``) and once
for the working tree (AFTER).  Per kernel (the tile is in its name: conv_*_m64_f32):

- ptxas's report: registers per thread, spilled bytes, static shared memory;
- occupancy at its launch size (the ``__launch_bounds__`` thread count, else the 256
  threads every family module launches with) on sm_90: 65536 registers, 228 KB of
  shared memory (1 KB of it reserved per block), 2048 threads, 32 blocks per SM;
  registers allocated per warp in units of 256;
- its main loop, from the SASS (cuobjdump -sass): the loop (a backward branch) with
  the most FMAs fed from memory (see the model below), and its instruction mix per iteration
  (a conv kernel's iteration is one K slice): instructions, FFMA (DFMA for f64) and
  their share, shared loads by width (LDS = 32 bit, LDS.64, LDS.128) and per FMA,
  shared stores, barriers, global loads;
- the ceiling of the main loop as a fraction of the FMA peak of its precision.

The ceiling model (per SM and clock on sm_90, one loop iteration):

    FMA pipe     F FMAs at 4 warp-instructions/clk (FP32: 128 lanes), 2 for FP64 (64 lanes)
    issue        N instructions at 4 warp-instructions/clk (4 schedulers, 1 each)
    shared mem   one 128-byte wavefront/clk; a warp's LDS/STS of w bits needs w/32
                 wavefronts (LDS 1, LDS.64 2, LDS.128 4) when conflict-free without
                 broadcast -- a warp reading at most 128 distinct bytes needs 1, so this
                 is an upper bound on the cost of wide loads -- except a load whose
                 address is warp-uniform by construction (only uniform registers and
                 immediates in its brackets: LDS.128 R4, [UR5+0x10]): all 32 lanes read
                 the same w/8 bytes, one broadcast wavefront whatever its width
    ceiling      = (F / FMA rate) / max(F / FMA rate, N / 4, wavefronts)
                 (issue bound and shared-memory bound; the lower one is reported)

It assumes every instruction of the loop body executes each iteration (a branched-over
prefetch counts), no stalls (latency hidden by enough warps: see occupancy), and no
bank conflicts.

The main loop is the loop doing the kernel's multiply-accumulate work: the one whose
own body (inner loops left out: they run their own trip count) has the most FMAs fed
from memory -- an FFMA/DFMA one of whose two multiplicands holds a value an LDS/LDG of
that body loaded (as loaded, or moved / converted by MOV or F2F, and not overwritten
since; read round the body twice, so a load at the end of an iteration feeds the top of
the next).  An FMA of registers only -- the polynomial of constant coefficients in an
exp, tanh or sigmoid -- is not such work.  Where no loop has 8 fed FMAs (elementwise
and reduction kernels), the loop with the most FMAs, else global loads, else
instructions.  Every FMA of the conv main loops is fed; the rule moves the WaveNet
kernels from their gate / sampling loops (polynomials) to their mat-vecs.

Only GEMM-like loops (8 or more FMAs of the precision on operands read from shared
memory: conv) get a ceiling.  A loop of 8 or more fed FMAs (either precision) that
loads 4 bytes or more per lane from global memory per FMA streams a matrix through
them, each value used about once (a GEMV: the WaveNet mat-vecs, spectral norm): its
limit is the bandwidth of the memory the matrix comes from (L2 or HBM), which this
model does not have, so it gets no FMA-peak ceiling, only "global memory: B bytes per
FMA"; its issue and shared bounds are listed but do not bind.  Streaming kernels
without such a loop (batch norm, gated activation) are bound by memory bandwidth too;
their global loads and widths say more.

Writes ``<out>/static-sm<arch>.md`` (between its ``<!-- kernel_static:begin -->`` and
``<!-- kernel_static:end -->`` markers: the hand-written sections around them are kept)
and ``.json``.  Needs libnvrtc and cuobjdump (the
CUDA toolkit, or ``pip install nvidia-cuda-nvrtc nvidia-cuda-cuobjdump``) and git for
``--before``; a GPU is never used.
"""
import argparse
import collections
import dataclasses
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tinygen.backend.cuda_kernels import codegen
from tinygen.backend.cuda_kernels.source import KernelSources, kernel_dir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_THREADS = 256  # every family module launches blocks of 256 threads (at most)
MIN_FMA_FOR_CEILING = 8
# The generated part of static-sm<arch>.md lies between these; the rest is written by hand.
BEGIN, END = "<!-- kernel_static:begin -->", "<!-- kernel_static:end -->"
GEMV_BYTES = 4  # global bytes a lane loads per FMA from which a loop streams its operand


@dataclasses.dataclass(frozen=True)
class Machine:
    """The per-SM limits and rates the model uses."""
    name: str
    registers: int = 65536
    register_unit: int = 256        # registers are allocated per warp in units of this
    max_registers_per_thread: int = 255
    shared_bytes: int = 228 * 1024
    shared_reserved_per_block: int = 1024
    max_threads: int = 2048
    max_blocks: int = 32
    issue_per_clock: float = 4.0     # warp-instructions per clock
    fma_per_clock: tuple = (("f32", 4.0), ("f64", 2.0))  # warp-FMAs per clock
    shared_wavefronts_per_clock: float = 1.0  # 128 bytes per clock


MACHINES = {90: Machine("sm_90 (H100/H200)"),
            80: Machine("sm_80 (A100)", shared_bytes=164 * 1024,
                        fma_per_clock=(("f32", 2.0), ("f64", 2.0)))}


# --- occupancy ----------------------------------------------------------------------------------
def occupancy(registers, shared, threads, machine=MACHINES[90]):
    """(resident blocks per SM, fraction of the SM's threads) at ``threads`` per block."""
    warps = math.ceil(threads / 32)
    limits = [machine.max_blocks, machine.max_threads // (warps * 32)]
    per_warp = math.ceil(max(registers, 1) * 32 / machine.register_unit) * machine.register_unit
    limits.append((machine.registers // per_warp) // warps)
    limits.append(machine.shared_bytes // (shared + machine.shared_reserved_per_block))
    blocks = max(0, min(limits))
    return blocks, blocks * warps * 32 / machine.max_threads


def launch_threads(sources):
    """{kernel: threads per block}: the __launch_bounds__ bound, else DEFAULT_THREADS."""
    return {name: sig.max_threads or DEFAULT_THREADS for name, sig in sources.signatures.items()}


# --- SASS ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Instruction:
    address: int
    opcode: str        # with modifiers: FFMA.FTZ, LDS.128, BAR.SYNC.DEFER_BLOCKING
    operands: str

    @property
    def base(self):
        return self.opcode.split(".")[0]

    @property
    def uniform_address(self):
        """Whether the memory address is the same for every lane of the warp: only
        uniform registers (URn) and immediates inside its brackets."""
        match = re.search(r"\[([^\]]*)\]", self.operands)
        return bool(match) and not re.search(r"(?<![U\w])R\d+", match.group(1))


_LINE = re.compile(r"^\s*/\*(?P<addr>[0-9a-f]{4,})\*/\s+(?:@!?U?P[0-9T]\s+)?"
                   r"(?P<op>[A-Z][A-Z0-9_.]*)(?P<rest>[^;]*);")


def split_functions(sass):
    """{function name: [Instruction]} from ``cuobjdump -sass`` output."""
    functions, current = {}, None
    for line in sass.splitlines():
        match = re.search(r"Function : (\w+)", line)
        if match:
            current = functions.setdefault(match.group(1), [])
            continue
        match = _LINE.match(line)
        if match and current is not None:
            current.append(Instruction(int(match["addr"], 16), match["op"],
                                       match["rest"].strip()))
    return functions


def _width(opcode):
    for part in opcode.split(".")[1:]:
        if part in ("64", "128", "U64", "U128"):
            return int(part.lstrip("U"))
    return 32


def loops(instructions):
    """(first, last) index pairs of every loop: a branch back to an earlier address."""
    index = {ins.address: i for i, ins in enumerate(instructions)}
    found = []
    for i, ins in enumerate(instructions):
        if ins.base == "BRA":
            match = re.search(r"0x([0-9a-f]+)", ins.operands)
            if match:
                target = int(match.group(1), 16)
                if target <= ins.address and target in index:
                    found.append((index[target], i))
    return found


@dataclasses.dataclass
class LoopMix:
    """The instruction mix of one iteration of a loop (static count of its body)."""
    instructions: int = 0
    fma: int = 0              # FMAs of the kernel's precision (fma_opcode)
    fma_opcode: str = "FFMA"
    other_fma: int = 0        # FMAs of the other precision (wavenet_step_f32 sums in double)
    shared_loads: dict = dataclasses.field(default_factory=dict)   # width -> count
    broadcast_loads: dict = dataclasses.field(default_factory=dict)  # of those, uniform address
    shared_stores: dict = dataclasses.field(default_factory=dict)
    barriers: int = 0
    global_loads: dict = dataclasses.field(default_factory=dict)
    global_stores: int = 0
    inner_loops: int = 0
    fed_fma: int = 0          # FMAs (either precision) with a multiplicand loaded in the loop

    @property
    def shared_load_count(self):
        return sum(self.shared_loads.values())

    @property
    def global_bytes_per_fma(self):
        """Bytes a lane loads from global memory per FMA (either precision) of the loop."""
        loaded = sum(count * int(width) // 8 for width, count in self.global_loads.items())
        return loaded / max(self.fma + self.other_fma, 1)

    @property
    def wavefronts(self):
        """128-byte shared-memory wavefronts per warp, conflict-free, no broadcast but
        for loads from a warp-uniform address (one wavefront each)."""
        full = sum(count * width // 32 for table in (self.shared_loads, self.shared_stores)
                   for width, count in table.items())
        return full - sum(count * (width // 32 - 1)
                          for width, count in self.broadcast_loads.items())


_LOADS = ("LDS", "LDSM", "LDG", "LD")
_COPIES = ("MOV", "F2F", "IMAD.MOV")   # value-preserving: a moved or converted load is a load
_NO_DESTINATION = ("ST", "STS", "STG", "BRA", "BAR", "EXIT", "RET", "BSSY", "BSYNC", "NOP",
                   "RED", "ATOM", "ATOMS", "WARPSYNC", "CALL", "MEMBAR", "DEPBAR", "YIELD")
_REGISTER = re.compile(r"(?<![\w.])-?\|?R(\d+)")


def _registers(operand):
    """The first general register an operand names (R12 in -|R12|.reuse), else None;
    RZ, predicates, uniform registers and constants are None."""
    match = _REGISTER.match(operand.strip())
    return int(match.group(1)) if match else None


def _destination_width(ins):
    """32-bit registers the instruction writes at its first operand."""
    if ins.base in _LOADS:
        return _width(ins.opcode) // 32
    parts = ins.opcode.split(".")
    if ins.base.startswith("D") or "WIDE" in parts or "64" in parts:
        return 2
    if ins.base == "F2F":  # F2F.F64.F32 writes a double, F2F.F32.F64 a float
        return 2 if len(parts) > 1 and parts[1] == "F64" else 1
    return 1


def fed_fmas(instructions, first, last, skip=()):
    """How many FMAs (FFMA, DFMA) of instructions[first:last + 1] (less ``skip``) multiply
    a value this loop loaded from memory: a multiplicand's register holds what an LDS /
    LDG of the body put there (or a MOV / F2F of it), and nothing of the body wrote it
    since.  The body is read twice round, so that a load at the end of an iteration feeds
    the FMAs at the top of the next (software pipelining).  These are the loop's
    multiply-accumulate work; an FMA of registers only (a polynomial of constant
    coefficients: exp, tanh) is not."""
    body = [instructions[i] for i in range(first, last + 1)
            if instructions[i].base != "NOP" and not any(a <= i <= b for a, b in skip)]
    loaded, count = set(), 0
    for lap in (0, 1):
        for ins in body:
            operands = ins.operands.split(",")
            if lap and ins.base in ("FFMA", "DFMA") and any(
                    _registers(op) in loaded for op in operands[1:3]):
                count += 1
            if ins.base in _NO_DESTINATION:
                continue
            dest = _registers(operands[0])
            if dest is None:
                continue
            written = set(range(dest, dest + _destination_width(ins)))
            if ins.base in _LOADS or (any(ins.opcode.startswith(c) for c in _COPIES)
                                      and len(operands) > 1
                                      and _registers(operands[-1]) in loaded):
                loaded |= written
            else:
                loaded -= written
    return count


def mix(instructions, first, last, fma_opcode, skip=()):
    """The LoopMix of instructions[first:last + 1], less the index ranges in ``skip``
    (inner loops, which run their own number of times)."""
    result = LoopMix(fma_opcode=fma_opcode)
    loads, stores, broadcast = collections.Counter(), collections.Counter(), collections.Counter()
    global_loads = collections.Counter()
    for i in range(first, last + 1):
        ins = instructions[i]
        if ins.base == "NOP" or any(a <= i <= b for a, b in skip):
            continue
        result.instructions += 1
        if ins.base == fma_opcode:
            result.fma += 1
        elif ins.base in ("FFMA", "DFMA"):
            result.other_fma += 1
        elif ins.base in ("LDS", "LDSM"):
            loads[_width(ins.opcode)] += 1
            if ins.base == "LDS" and ins.uniform_address:
                broadcast[_width(ins.opcode)] += 1
        elif ins.base == "STS":
            stores[_width(ins.opcode)] += 1
        elif ins.base == "BAR":
            result.barriers += 1
        elif ins.base in ("LDG", "LD"):
            global_loads[_width(ins.opcode)] += 1
        elif ins.base in ("STG", "ST"):
            result.global_stores += 1
    result.shared_loads, result.shared_stores = dict(loads), dict(stores)
    result.broadcast_loads = dict(broadcast)
    result.global_loads = dict(global_loads)
    result.fed_fma = fed_fmas(instructions, first, last, skip)
    return result


def main_loop(instructions, fma_opcode):
    """(first, last, LoopMix) of the main loop: the loop whose own body (inner loops
    left out) has the most FMAs (either precision), else the most global loads, else
    the most instructions; ties go to the innermost.  None without loops."""
    all_loops = loops(instructions)
    candidates = []
    for first, last in all_loops:
        inner = [(f, l) for f, l in all_loops
                 if first <= f and l <= last and (f, l) != (first, last)]
        m = mix(instructions, first, last, fma_opcode, skip=inner)
        m.inner_loops = len(inner)
        fed = m.fed_fma if m.fed_fma >= MIN_FMA_FOR_CEILING else 0
        candidates.append((fed, m.fma + m.other_fma, sum(m.global_loads.values()),
                           m.instructions, -(last - first), first, last, m))
    if not candidates:
        return None
    best = max(candidates, key=lambda c: c[:6])
    return best[5], best[6], best[7]


def ceiling(m, precision, machine=MACHINES[90]):
    """{issue, shared, ceiling, bound} as fractions of the FMA peak of ``precision``.

    None unless the loop is a GEMM's (at least MIN_FMA_FOR_CEILING FMAs of the precision
    on operands read from shared memory): a streaming kernel's limit is memory bandwidth,
    not this.  A loop of fed FMAs (MIN_FMA_FOR_CEILING or more, either precision) that
    loads GEMV_BYTES or more from global memory per FMA (a lane's) streams a matrix
    through them, each value feeding one FMA or so: its bound is the bandwidth of wherever the matrix lives (L2 or HBM), which the
    model does not have -- ``ceiling`` is None, ``bound`` "global memory", and
    ``global_bytes_per_fma`` says how much it needs (issue and shared bounds, which do
    not bind, are kept for the record where the loop has them)."""
    if m is None:
        return None
    streaming = m.fed_fma >= MIN_FMA_FOR_CEILING and m.global_bytes_per_fma >= GEMV_BYTES
    if not streaming and (m.fma < MIN_FMA_FOR_CEILING or not m.shared_loads):
        return None
    fma_clocks = m.fma / dict(machine.fma_per_clock)[precision]
    issue_clocks = m.instructions / machine.issue_per_clock
    shared_clocks = m.wavefronts / machine.shared_wavefronts_per_clock
    issue = fma_clocks / max(fma_clocks, issue_clocks) if m.fma else None
    shared = fma_clocks / max(fma_clocks, shared_clocks) if m.fma and m.shared_loads else None
    if streaming:
        return {"issue": issue, "shared": shared, "ceiling": None, "bound": "global memory",
                "global_bytes_per_fma": m.global_bytes_per_fma}
    return {"issue": issue, "shared": shared, "ceiling": min(issue, shared),
            "bound": "issue" if issue <= shared else "shared memory"}


# --- one set of kernels -----------------------------------------------------------------------
def analyse(sources, arch=90, only=()):
    """[row dict] per entry point of ``sources`` (compiled with NVRTC for sm_``arch``)."""
    machine = MACHINES[arch]
    build = codegen.compile_module(sources, arch)
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "module.cubin"
        cubin.write_bytes(build.cubin)
        sass = codegen.sass(cubin)
    functions = split_functions(sass)
    threads = launch_threads(sources)
    rows = []
    for name, res in sorted(build.resources.items()):
        if only and not any(text in name for text in only):
            continue
        precision = "f64" if name.endswith("_f64") else "f32"
        fma_opcode = "DFMA" if precision == "f64" else "FFMA"
        blocks, occ = occupancy(res.registers, res.shared, threads.get(name, DEFAULT_THREADS),
                                machine)
        found = main_loop(functions.get(name, []), fma_opcode)
        loop = found[2] if found else None
        row = {"kernel": name, "precision": precision,
               "threads": threads.get(name, DEFAULT_THREADS),
               "registers": res.registers, "spill_bytes": res.spills, "stack": res.stack,
               "shared": res.shared, "blocks_per_sm": blocks, "occupancy": occ,
               "sass_instructions": len(functions.get(name, [])),
               "loop": dataclasses.asdict(loop) if loop else None,
               "ceiling": ceiling(loop, precision, machine)}
        if loop:
            row["loop"]["wavefronts"] = loop.wavefronts
        rows.append(row)
    return {"arch": arch, "nvrtc": ".".join(map(str, build.nvrtc_version)),
            # the include directory (a temporary one for --before) is no part of the result
            "options": ["-I<kernels>" if o.startswith("-I") else o for o in build.options],
            "rows": rows}


def sources_at(revision, directory):
    """The kernel files of git ``revision`` written into ``directory``."""
    names = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", revision,
                            "kernels/"], capture_output=True, text=True, check=True).stdout
    for name in names.split():
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:{name}"],
                              capture_output=True, text=True, check=True).stdout
        (Path(directory) / Path(name).name).write_text(text, encoding="utf-8")
    return KernelSources(directory)


# --- report -------------------------------------------------------------------------------------
def _pct(value):
    return "-" if value is None else f"{100 * value:.0f}%"


def _widths(table):
    if not table:
        return "0"
    ordered = sorted(table.items(), key=lambda kv: int(kv[0]))
    return " + ".join(f"{count}x{width}" for width, count in ordered)


def _shared_loads(loop):
    """'48x128 (48 uniform)': the loads by width, and how many are broadcasts."""
    text = _widths(loop["shared_loads"])
    uniform = sum(loop.get("broadcast_loads", {}).values())
    return f"{text} ({uniform} uniform)" if uniform else text


def _ceiling_text(row):
    c = row and row["ceiling"]
    if not c:
        return "-"
    if c["ceiling"] is None:  # a GEMV streaming its matrix: no FMA-peak ceiling
        return f"- ({c['bound']}: {c['global_bytes_per_fma']:.0f} B per FMA)"
    return f"{_pct(c['ceiling'])} ({c['bound']})"


def detail_table(rows):
    lines = ["| kernel | threads | regs | spill B | smem B | blocks/SM | occupancy | loop instr "
             "| FMA | FMA share | shared loads (count x bits) | LDS per FMA | STS | barriers "
             "| global loads | issue bound | smem bound | ceiling |",
             "|---" * 18 + "|"]
    for r in rows:
        loop, c = r["loop"], r["ceiling"] or {}
        if loop:
            fma = f"{loop['fma']}"
            if loop["other_fma"]:
                other = "DFMA" if loop["fma_opcode"] == "FFMA" else "FFMA"
                fma += f" (+{loop['other_fma']} {other})"
            loads = sum(loop["shared_loads"].values())
            per_fma = f"{loads / loop['fma']:.2f}" if loop["fma"] and loads else "-"
            loop_cells = (f"{loop['instructions']} | {fma} | "
                          f"{_pct(loop['fma'] / max(loop['instructions'], 1))} | "
                          f"{_shared_loads(loop)} | {per_fma} | "
                          f"{_widths(loop['shared_stores'])} | {loop['barriers']} | "
                          f"{_widths(loop['global_loads'])}")
        else:
            loop_cells = "no loop | | | | | | |"
        lines.append(f"| {r['kernel']} | {r['threads']} | {r['registers']} | {r['spill_bytes']} | "
                     f"{r['shared']} | {r['blocks_per_sm']} | {_pct(r['occupancy'])} | "
                     f"{loop_cells} | {_pct(c.get('issue'))} | {_pct(c.get('shared'))} | "
                     f"{_ceiling_text(r)} |")
    return "\n".join(lines)


def summary_table(before, after):
    old = {r["kernel"]: r for r in before["rows"]} if before else {}
    new = {r["kernel"]: r for r in after["rows"]}
    lines = ["| kernel | regs | spill B | smem B | occupancy | ceiling BEFORE | ceiling AFTER |",
             "|---|---|---|---|---|---|---|"]

    def pair(key, fmt=str):
        def cell(r):
            return "-" if r is None else fmt(r[key])
        return lambda b, a: cell(b) if cell(b) == cell(a) else f"{cell(b)} -> {cell(a)}"

    cells = [pair("registers"), pair("spill_bytes"), pair("shared"), pair("occupancy", _pct)]
    for name in sorted(set(old) | set(new)):
        b, a = old.get(name), new.get(name)
        lines.append(f"| {name} | " + " | ".join(f(b, a) for f in cells)
                     + f" | {_ceiling_text(b) if b else 'absent'} | "
                     f"{_ceiling_text(a) if a else 'absent'} |")
    return "\n".join(lines)


def write_results(out_dir, before, after, argv, before_name):
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = after["arch"]
    stem = out_dir / f"static-sm{arch}"
    model = __doc__[__doc__.index("The ceiling model"):__doc__.index("Writes ")].rstrip()
    command = " ".join(["python -m benchmarks.kernel_static", *argv])
    doc = {"model": model, "machine": dataclasses.asdict(MACHINES[arch]),
           "before_revision": before_name, "before": before, "after": after}
    md = [f"# CUDA kernels on {MACHINES[arch].name}: static performance (no GPU)", "",
          f"`{command}`: each kernel compiled as "
          f"the run-time path compiles it (NVRTC {after['nvrtc']}, cupy's options: "
          f"`{' '.join(o for o in after['options'] if not o.startswith('-I'))}`), registers, "
          "spills and shared memory from ptxas, the main loop's instruction mix from the "
          "SASS (cuobjdump).  BEFORE: the kernels of "
          f"`{before_name}`; AFTER: the working tree.  No GPU timing exists: these are "
          "ceilings of a model, not measurements.", "",
          "```", model, "```", "",
          "## Summary", "", summary_table(before, after), ""]
    if before:
        md += [f"## BEFORE ({before_name})", "", detail_table(before["rows"]), ""]
    md += ["## AFTER (working tree)", "", detail_table(after["rows"])]
    path = stem.with_suffix(".md")
    text = splice(path.read_text() if path.exists() else "", "\n".join(md))  # may refuse
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    path.write_text(text)
    return stem


def splice(text, generated):
    """``text`` with what lies between its BEGIN and END markers replaced by
    ``generated``: the hand-written sections around them are kept.  A text without the
    markers (a file written by hand, or before them) keeps all of it, after the
    generated part; markers out of order or repeated are an error, not a guess."""
    section = f"{BEGIN}\n{generated}\n{END}"
    begins, ends = text.count(BEGIN), text.count(END)
    if begins == ends == 0:
        rest = text.strip("\n")
        return section + "\n" + (f"\n{rest}\n" if rest else "")
    if begins != 1 or ends != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"expected one {BEGIN} before one {END}, found {begins} and {ends}"
                         " in the order given: fix the markers by hand")
    head, rest = text.split(BEGIN, 1)
    return head + section + rest.split(END, 1)[1]


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="main",
                        help="git revision of the BEFORE column ('' to skip it)")
    parser.add_argument("--arch", type=int, default=90, choices=sorted(MACHINES))
    parser.add_argument("--only", nargs="*", default=[], help="kernels whose name holds any")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    try:
        after = analyse(KernelSources(kernel_dir()), args.arch, args.only)
        before = None
        if args.before:
            with tempfile.TemporaryDirectory() as tmp:
                before = analyse(sources_at(args.before, tmp), args.arch, args.only)
    except codegen.CodegenUnavailable as exc:
        print(f"benchmarks.kernel_static: {exc}", file=sys.stderr)
        return 2
    print(summary_table(before, after))
    print()
    print(detail_table(after["rows"]))
    try:
        stem = write_results(args.out, before, after, argv, args.before)
    except ValueError as exc:
        print(f"benchmarks.kernel_static: {exc}", file=sys.stderr)
        return 2
    print(f"\nwrote {stem}.md and {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
