"""Small builders shared by the grader tests."""

from app.graders import score


def completion(answer: str, think: str = "I look at the image.") -> str:
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def run_one(grader: dict, text: str, item: dict, **sample_fields):
    """Score one completion; returns (reward, sub_rewards, set of raised flags)."""
    result = score(grader, [{"output_text": text, **sample_fields}], [item])
    subs = {k: v[0] for k, v in result.sub_rewards.items()}
    flags = {k for k, v in result.flags.items() if v[0]}
    return result.rewards[0], subs, flags
