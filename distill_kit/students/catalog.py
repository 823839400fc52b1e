"""The students in the cache, and a student as a ``configs/models.yaml`` entry (so notebooks 02-06 and runs
probe it by name, through ``--models-overlay``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from distill_kit.config import ConfigError, GenerationParams, ModelConfig, read_yaml
from distill_kit.students.recipe import Recipe, Student, load_student
from distill_kit.students.train import make_student, students_dir


def cached_students() -> list[Student]:
    """Every finished student under the cache, oldest first."""
    root = students_dir()
    found = [s for d in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime) if d.is_dir()
             for s in [load_student(d)] if s is not None] if root.is_dir() else []
    return found


def describe(student: Student) -> str:
    """One line: name, teacher, dose, where and how long it trained, the loss before and after."""
    return (f"{student.name}: teacher {student.teacher}, dose {student.dose} pairs, {student.steps} steps on "
            f"{student.device} in {student.seconds:.0f} s, loss {student.first_loss:.2f} -> {student.final_loss:.2f}"
            f"; adapter {student.adapter}")


def student_lines() -> list[str]:
    """``distill-kit student list``: one line per cached student, or one line saying there is none."""
    students = cached_students()
    return [describe(s) for s in students] or [f"no students in {students_dir()} (make one: distill-kit student make)"]


def make_from_cli(teacher: str, dose: int, *, base: str, name: str | None, store_path: str | None,
                  recipe_changes: dict[str, Any]) -> Student:
    """``make_student`` with the defaults' recipe changed by the command's options (a bad value: one line)."""
    try:
        recipe = Recipe(**recipe_changes)
    except ValueError as exc:
        raise ConfigError(f"bad recipe option: {str(exc).splitlines()[-1].strip()}") from None
    return make_student(teacher, dose, base=base, name=name, store_path=store_path, recipe=recipe)


def model_entry(student: Student) -> dict[str, Any]:
    """The student's models.yaml entry (what ``Student.model_config_for`` builds, as YAML)."""
    cfg = student.model_config_for()
    return cfg.model_dump(mode="json", include={"name", "provider", "model", "path", "adapter", "params",
                                                "concurrency", "timeout", "max_retries"})


def overlay_yaml(students: list[Student]) -> str:
    """A models overlay holding the students."""
    return yaml.safe_dump({"models": [model_entry(s) for s in students]}, sort_keys=False)


def add_to_overlay(student: Student, path: Path) -> None:
    """Append the student's entry to a models overlay file (created if absent). A name already in the file is an
    error, never overwritten."""
    raw = read_yaml(path) if path.is_file() else {"models": []}
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'models:' list")
    if any(isinstance(m, dict) and m.get("name") == student.name for m in raw["models"]):
        raise ConfigError(f"{path} already has a model named {student.name!r}; choose another --name")
    raw["models"].append(model_entry(student))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def student_config(teacher: str, dose: int, *, base: str = "", recipe: Recipe | None = None, name: str | None = None,
                   store_path: str | None = None, concurrency: int = 8) -> tuple[ModelConfig, Student | None]:
    """The model to probe and its student record: the student of ``teacher`` after ``dose`` pairs (trained or from
    the cache), or, at dose 0, the base itself (the untrained reference point; no record)."""
    recipe = recipe or Recipe()
    if dose == 0:
        params = GenerationParams(temperature=0.0, max_tokens=recipe.max_answer_tokens, seed=0)
        return ModelConfig(name=name or "base", provider="transformers", model="base", path=base or None,
                           params=params, concurrency=concurrency, timeout=3600.0, max_retries=0), None
    student = make_student(teacher, dose, base=base, recipe=recipe, name=name, store_path=store_path)
    return student.model_config_for(concurrency=concurrency), student
