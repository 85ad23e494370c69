"""The paper's real datasets (STUDY.md §5): loaders, prompts and verifiers for math and logic.

Math (one user message: the study's instruction, then the problem): DeepScaleR (train), MATH-500, AIME 2024,
AIME 2025, AMC 2023 (evaluation). Logic (the dataset's own prompt): SynLogic-Easy (train and validation) and the
five KOR-Bench subsets (evaluation).

Where the data comes from. A hub dataset is read from the local Hugging Face cache (a snapshot fetched with
`hf download REPO --repo-type dataset`, or what an earlier `datasets.load_dataset` left in its cache), downloaded
by `datasets.load_dataset` when the hub is reachable, or read from `data_path=`: a parquet/jsonl/json file, or a
folder of such files laid out as on the hub, with the hub's exact column names and types. Nothing is read when a
task is constructed or listed; the first `problems()` call loads its split. Offline, a dataset that is not cached
fails at once with instructions (no retries, no long timeouts).

Split names are the datasets' own, listed in each task's `splits`: DeepScaleR `train`; MATH-500, AIME 2025,
AMC 2023 `test`; AIME 2024 `train` (its only split, used for evaluation); SynLogic `train` and `validation`;
KOR-Bench has no splits, so its one is called `test`. `train_split` and `eval_split` name the split to train on
and to evaluate on (None where a dataset has none); `problems()` without a split uses `eval_split`. The offline
toy tasks (gym.py) instead use `train`/`eval`, held apart by a prompt hash.

KOR-Bench is not on the Hugging Face hub: its loader, prompt and grading are in korbench.py.
"""

from __future__ import annotations

import json
import random
import socket
import warnings
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mtalign import paths
from mtalign.tasks import graders, synlogic
from mtalign.tasks.base import Problem, Task, stable_hash

# datasets and huggingface_hub are imported inside the functions that use them: importing them takes a second or
# more, and the offline toy tasks, which share this package, never need them.

DATA_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
HUB_PROBE_TIMEOUT_S = 3.0


class DatasetUnavailable(FileNotFoundError):
    """A dataset that is neither cached locally nor reachable; the message says how to get it.

    A FileNotFoundError, so the command line reports it as one line with exit status 2, like other bad input.
    """


# -- loading ------------------------------------------------------------------------------------------------------

def checked_data_path(data_path: str | Path | None) -> Path | None:
    """`data_path` as a Path that exists (checked when a task is built, before any expensive work).

    A relative path is read from the current folder, else from the project root.
    """
    if data_path is None:
        return None
    path = Path(data_path).expanduser()
    if not path.is_absolute() and not path.exists() and (paths.ROOT / path).exists():
        # Grid cells run in their own folders, so a grid file names the project's data (its hub fixtures) relative
        # to the project root.
        path = paths.ROOT / path
    if not path.exists():
        raise FileNotFoundError(f"data_path {str(path)!r} does not exist; pass a parquet/jsonl/json file or a folder")
    return path


def load_split(repo: str, config: str | None, split: str, data_path: Path | None) -> list[dict[str, Any]]:
    """The rows of one split, from `data_path` if given, else from the local HF cache or the hub."""
    if data_path is not None:
        return _load_local(data_path, config, split)
    return _load_hub(repo, config, split)


def _load_local(path: Path, config: str | None, split: str) -> list[dict[str, Any]]:
    import datasets

    if path.is_file():
        builder = DATA_SUFFIXES.get(path.suffix)
        if builder is None:
            raise ValueError(f"data_path {str(path)!r}: unsupported file type; use one of {', '.join(DATA_SUFFIXES)}")
        # One file is one split, whichever split was asked for.
        return datasets.load_dataset(builder, data_files={split: str(path)}, split=split).to_list()
    # A folder follows the hub's layout: a README that declares configs (SynLogic), or files named by split.
    try:
        return datasets.load_dataset(str(path), config if declares_configs(path) else None, split=split).to_list()
    except ValueError as error:  # unknown split or config: datasets' message lists the valid ones
        raise ValueError(f"dataset folder {str(path)!r}: {error}") from error


def declares_configs(folder: Path) -> bool:
    """Does the folder's README (a hub dataset card) declare configs and their data files?"""
    readme = folder / "README.md"
    return readme.is_file() and "config_name" in readme.read_text(encoding="utf-8", errors="replace")


def _load_hub(repo: str, config: str | None, split: str) -> list[dict[str, Any]]:
    import datasets
    from huggingface_hub import snapshot_download

    try:  # a snapshot in the hub cache (`hf download`): read it as a local folder, no network
        folder = snapshot_download(repo_id=repo, repo_type="dataset", local_files_only=True)
    except Exception:  # not cached (LocalEntryNotFoundError) or an unreadable cache: try the other sources
        folder = None
    if folder is not None:
        return _load_local(Path(folder), config, split)
    if datasets.config.HF_HUB_OFFLINE:
        try:  # datasets' own cache of an earlier load_dataset; offline it answers at once
            return datasets.load_dataset(repo, config, split=split).to_list()
        except (OSError, datasets.exceptions.DatasetNotFoundError) as error:
            raise DatasetUnavailable(_how_to_get(repo, config, split, "HF_HUB_OFFLINE is set")) from error
    if not _hub_reachable():
        # Without this probe datasets retries for ~25 s before giving up on an unreachable hub.
        raise DatasetUnavailable(_how_to_get(repo, config, split, "the hub is unreachable"))
    return datasets.load_dataset(repo, config, split=split).to_list()


def _hub_reachable() -> bool:
    """Can a TCP connection to the hub endpoint open within a few seconds?"""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _how_to_get(repo: str, config: str | None, split: str, why: str) -> str:
    from huggingface_hub import constants

    which = f"{repo}" + (f" (config {config!r})" if config else "") + f", split {split!r}"
    return (
        f"dataset {which} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and cannot be "
        f"downloaded: {why}. To get it: on a machine with internet access run `hf download {repo} --repo-type "
        f"dataset` (older huggingface_hub: `huggingface-cli download --repo-type dataset {repo}`) and copy the "
        f"cache folder to this machine's HF_HOME; or download it with `--local-dir DIR` and pass data_path=DIR "
        f"(a parquet/jsonl file or a folder with the dataset's files)."
    )


def require_fields(rows: list[dict[str, Any]], fields: tuple[str, ...], what: str) -> None:
    """Fail with the schema difference, not with a KeyError deep inside, when rows lack the expected fields."""
    for index, row in enumerate(rows):
        missing = [field for field in fields if field not in row]
        if missing:
            raise ValueError(
                f"{what}: row {index} lacks field(s) {', '.join(missing)}; expected {', '.join(fields)}, "
                f"found {', '.join(row)}"
            )


def answer_text(value: Any) -> str:
    """A gold answer as a string: AMC's float 27.0 becomes `27`, other values their plain text."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() if value is not None else ""


def take(problems: list[Problem], n: int | None, seed: int) -> list[Problem]:
    """All problems in dataset order, or `n` of them: the first n of a shuffle seeded by `seed`.

    The same seed gives the same order, so a smaller n is always a prefix of a larger one.
    """
    if n is None:
        return list(problems)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    if n > len(order):
        warnings.warn(f"asked for {n} problems, the split has {len(order)}; returning all of them", stacklevel=3)
    return [problems[i] for i in order[:n]]


def unique_ids(ids: list[str]) -> list[str]:
    """Ids with repeats made distinct by a `-2`, `-3`… suffix in dataset order (datasets repeat problems)."""
    seen: Counter[str] = Counter()
    out = []
    for id_ in ids:
        seen[id_] += 1
        out.append(id_ if seen[id_] == 1 else f"{id_}-{seen[id_]}")
    return out


# -- the task families --------------------------------------------------------------------------------------------

class HubTask(Task):
    """A task read from a real dataset: lazy per-split loading, stable ids, seeded subsets."""

    repo: str = ""
    config: str | None = None
    splits: tuple[str, ...] = ("test",)
    train_split: str | None = None
    eval_split: str | None = "test"

    def __init__(self, data_path: str | Path | None = None):
        self.data_path = checked_data_path(data_path)
        self._loaded: dict[str, list[Problem]] = {}

    def problems(self, split: str | None = None, n: int | None = None, seed: int = 0) -> list[Problem]:
        """Problems of `split` (default: the evaluation split); `n` picks a seeded subset (see `take`)."""
        if split is None:
            if self.eval_split is None:
                raise ValueError(f"task {self.name!r} has no evaluation split; pass one of: {', '.join(self.splits)}")
            split = self.eval_split
        self._check_split(split)
        if n is not None and n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if split not in self._loaded:
            self._loaded[split] = self._to_problems(self._load_rows(split), split)
        return take(self._loaded[split], n, seed)

    def _load_rows(self, split: str) -> list[dict[str, Any]]:
        return load_split(self.repo, self.config, split, self.data_path)

    def _to_problems(self, rows: list[dict[str, Any]], split: str) -> list[Problem]:
        raise NotImplementedError


class MathTask(HubTask):
    """A math dataset graded by `graders` (STUDY.md §3/§5): `math_verify` by default, or the paper's `exact`."""

    domain = "math"
    question_field = "problem"
    answer_field = "answer"
    id_fields: tuple[str, ...] = ()  # the dataset's own id columns, first present wins; else a hash of the problem

    def __init__(self, grader: str = "math_verify", data_path: str | Path | None = None):
        self._grade = graders.get_grader(grader)  # an unknown grader fails here, before any data is read
        self.grader = grader
        super().__init__(data_path)

    def check(self, answer: str, problem: Problem) -> bool:
        return self._grade(answer, problem.answer)

    def canonical(self, answer: str | None) -> str | None:
        """The grader's notion of sameness: exact text for `exact`, math-verify's normal form otherwise."""
        if self.grader == "exact":
            return (answer.strip() or None) if isinstance(answer, str) else None
        return graders.canonical(answer)

    def _to_problems(self, rows: list[dict[str, Any]], split: str) -> list[Problem]:
        require_fields(rows, (self.question_field, self.answer_field), f"{self.name} split {split!r}")
        kept = [row for row in rows if answer_text(row[self.answer_field])]
        if len(kept) < len(rows):  # a problem without a gold answer cannot be verified; it cannot be used
            warnings.warn(f"{self.name} split {split!r}: dropped {len(rows) - len(kept)} rows with an empty answer")
        ids = []
        for row in kept:
            own = next((row[f] for f in self.id_fields if row.get(f) not in (None, "")), None)
            ids.append(f"{self.name}-{own}" if own is not None else
                       f"{self.name}-{stable_hash(str(row[self.question_field])):016x}")
        return [
            Problem(
                id=id_,
                question=str(row[self.question_field]),
                answer=answer_text(row[self.answer_field]),
                metadata={k: v for k, v in row.items() if k not in (self.question_field, self.answer_field)},
            )
            for id_, row in zip(unique_ids(ids), kept)
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, grader={self.grader!r})"


class DeepScaleR(MathTask):
    """DeepScaleR-Preview (agentica-org/DeepScaleR-Preview-Dataset, ~40.3k rows: problem, answer, solution)."""

    name = "deepscaler"
    repo = "agentica-org/DeepScaleR-Preview-Dataset"
    splits = ("train",)
    train_split = "train"
    eval_split = None


class Math500(MathTask):
    """MATH-500 (HuggingFaceH4/MATH-500, test, 500 rows: problem, solution, answer, subject, level, unique_id)."""

    name = "math500"
    repo = "HuggingFaceH4/MATH-500"
    id_fields = ("unique_id",)


class Aime24(MathTask):
    """AIME 2024 (HuggingFaceH4/aime_2024, 30 rows in split `train`; answers are strings)."""

    name = "aime24"
    repo = "HuggingFaceH4/aime_2024"
    splits = ("train",)
    eval_split = "train"
    id_fields = ("id",)


class Aime25(MathTask):
    """AIME 2025 (math-ai/aime25, test: problem, answer, id)."""

    name = "aime25"
    repo = "math-ai/aime25"
    id_fields = ("id",)


class Amc23(MathTask):
    """AMC 2023 (math-ai/amc23, test, 40 rows; the problem is in `question`, the answer is a number)."""

    name = "amc23"
    repo = "math-ai/amc23"
    question_field = "question"
    id_fields = ("id",)


class SynLogic(HubTask):
    """SynLogic (MiniMaxAI/SynLogic, config easy by default; STUDY.md §5), prompted with the dataset's own messages.

    Rows: data_source (puzzle type, `val/` prefix in validation), prompt (list of role/content messages), ability,
    extra_info.game_data_str (JSON with the ground truth). Verified per type by `synlogic.VERIFIERS`. A split with
    types that have no verifier is refused when loaded, since their rewards would silently be 0; pass
    `verifiable_only=True` to drop those rows, or `task_types=[...]` to keep only some types.
    """

    name = "synlogic"
    domain = "logic"
    repo = "MiniMaxAI/SynLogic"
    splits = ("train", "validation")
    train_split = "train"
    eval_split = "validation"
    styles = ("chat", "plain")
    configs = ("easy", "hard")

    def __init__(self, data_path: str | Path | None = None, config: str = "easy", verifiable_only: bool = False,
                 task_types: list[str] | tuple[str, ...] | None = None):
        if config not in self.configs:
            raise ValueError(f"unknown SynLogic config {config!r}; valid configs: {', '.join(self.configs)}")
        unknown = sorted(set(task_types or ()) - set(synlogic.SYNLOGIC_TASK_TYPES))
        if unknown:
            raise ValueError(f"unknown SynLogic task type(s) {', '.join(unknown)}; valid types: "
                             f"{', '.join(synlogic.SYNLOGIC_TASK_TYPES)}")
        super().__init__(data_path)
        self.config = config
        self.verifiable_only = verifiable_only
        self.task_types = tuple(task_types) if task_types else None

    def _load_rows(self, split: str) -> list[dict[str, Any]]:
        path = self.data_path
        # A copy of the hub folder without its README would mix easy and hard files: read the config's own folder.
        own = path / f"synlogic_{self.config}" if path is not None else None
        if own is not None and own.is_dir() and not declares_configs(path):
            path = own
        return load_split(self.repo, self.config, split, path)

    def _to_problems(self, rows: list[dict[str, Any]], split: str) -> list[Problem]:
        what = f"synlogic ({self.config}) split {split!r}"
        require_fields(rows, ("data_source", "prompt", "extra_info"), what)
        parsed = []
        for index, row in enumerate(rows):
            try:
                game = json.loads(row["extra_info"]["game_data_str"])
            except (KeyError, TypeError, json.JSONDecodeError) as error:
                raise ValueError(f"{what}: row {index} has no readable extra_info.game_data_str ({error})") from error
            messages = [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
            parsed.append((row, game, messages, "\n\n".join(m["content"] for m in messages)))
        ids = unique_ids([f"synlogic-{stable_hash(question):016x}" for *_, question in parsed])
        problems = [
            Problem(
                id=id_,
                question=question,
                answer=answer_text(game.get("answer")),
                metadata={
                    **{k: v for k, v in row.items() if k not in ("prompt", "extra_info")},
                    "task_type": synlogic.task_type(row["data_source"]),
                    "messages": messages,
                    "game_data": game,
                    "extra_info": {k: v for k, v in row["extra_info"].items() if k != "game_data_str"},
                },
            )
            for id_, (row, game, messages, question) in zip(ids, parsed)
        ]
        present = Counter(p.metadata["task_type"] for p in problems)
        if self.task_types:
            problems = [p for p in problems if p.metadata["task_type"] in self.task_types]
            if not problems:
                raise ValueError(f"{what} has no rows of type(s) {', '.join(self.task_types)}; "
                                 f"types present: {', '.join(sorted(present))}")
        unverifiable = Counter(p.metadata["task_type"] for p in problems
                               if p.metadata["task_type"] not in synlogic.VERIFIERS)
        if unverifiable and not self.verifiable_only:
            counts = ", ".join(f"{kind} ({count})" for kind, count in sorted(unverifiable.items()))
            raise ValueError(
                f"{what}: no verifier for SynLogic task(s) {counts}; their rewards would always be 0. Pass "
                f"verifiable_only=True to drop them, or task_types=[...] from the verifiable ones: "
                f"{', '.join(sorted(synlogic.VERIFIERS))}"
            )
        problems = [p for p in problems if p.metadata["task_type"] in synlogic.VERIFIERS]
        if not problems:
            raise ValueError(f"{what}: none of its task types can be verified; types present: "
                             f"{', '.join(sorted(present))}; verifiable: {', '.join(sorted(synlogic.VERIFIERS))}")
        return problems

    def prompt(self, problem: Problem, style: str = "chat") -> str | list[dict[str, str]]:
        """The dataset's own messages (`chat`), or their contents joined by blank lines (`plain`)."""
        self._check_style(style)
        messages = [dict(m) for m in problem.metadata["messages"]]
        return messages if style == "chat" else "\n\n".join(m["content"] for m in messages)

    def check(self, answer: str, problem: Problem) -> bool:
        """Raises for a type without a verifier (see `synlogic.verify`); any answer to the others gives a bool."""
        return synlogic.verify(problem.metadata["task_type"], answer, problem.metadata["game_data"])


HUB_TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (DeepScaleR, Math500, Aime24, Aime25, Amc23, SynLogic)}
