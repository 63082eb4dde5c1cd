"""The creative tools (animate, extend, remix, connect, loop, blend, storyboard), their
records and `reproduce`, with tiny random models: what must hold whatever the weights."""

import json

import pytest
import torch

from kinetoscope.cli import main
from kinetoscope.creative import pull_to_known
from kinetoscope.inputs import InputAdjustedWarning, InputError
from kinetoscope.io.video import Video, read_video, write_video
from kinetoscope.models.dit import DIT_PRESETS, DiffusionTransformer
from kinetoscope.models.vae import VAE_PRESETS, VideoVAE
from kinetoscope.pipeline import GenerationError, ModelIndex, Pipeline
from kinetoscope.provenance.watermark import payload_for
from kinetoscope.results import (
    RecordError,
    read_record,
    record_path,
    reproduce,
    same_frames,
    save,
)
from kinetoscope.storyboard import Storyboard, StoryboardError

PROMPT = "A red circle falls and bounces."


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"])
    transformer = DiffusionTransformer(DIT_PRESETS["tiny"])
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # zero-initialised outputs would make every clip the same
        for parameter in transformer.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return Pipeline(vae, transformer, ModelIndex(short_side=64, steps=2, guidance=3.0))


@pytest.fixture(scope="module")
def clip(pipeline) -> Video:
    """A generated 1 s square clip (17 frames, 64x64) to feed the tools."""
    return pipeline.generate(PROMPT, 1.0, aspect="1:1").video


@pytest.fixture(scope="module")
def folder(pipeline, tmp_path_factory):
    return pipeline.save_pretrained(tmp_path_factory.mktemp("tools") / "model")


def _steps(record: list) -> list:
    return [done for done, _ in record]


def test_generate_returns_frames_fps_and_a_full_record(pipeline):
    result = pipeline.generate(PROMPT, 1.0, aspect="1:1", seed=4)
    assert tuple(result.frames.shape) == (17, 64, 64, 3) and result.fps == 16
    arguments = result.record["arguments"]
    assert result.record["tool"] == "generate"
    assert arguments == arguments | {"prompt": PROMPT, "seconds": 1.0, "seed": 4, "steps": 2}
    assert arguments["guidance"] == 3.0 and arguments["aspect"] == "1:1"  # defaults filled in
    json.dumps(result.record)  # JSON-ready


def test_unknown_option_is_refused(pipeline):
    with pytest.raises(GenerationError, match="unknown option colour"):
        pipeline.generate(PROMPT, 1.0, colour="red")


def test_animate_starts_from_the_image(pipeline, clip):
    image = Video(clip.frames[5:6], 16)
    result = pipeline.animate(image, PROMPT, 2.0, rights_attested=True)
    assert tuple(result.frames.shape) == (33, 64, 64, 3)
    assert torch.equal(result.frames[0], image.frames[0])
    assert result.record["inputs"][0]["role"] == "image"


def test_uploads_need_a_rights_attestation(pipeline, clip):
    with pytest.raises(InputError, match="attest that you own the rights"):
        pipeline.animate(Video(clip.frames[:1], 16), PROMPT)
    with pytest.raises(InputError, match="attest"):
        pipeline.remix(clip, PROMPT, 0.5)


def test_animate_refuses_a_video_and_fits_an_odd_image_with_a_notice(pipeline, clip):
    with pytest.raises(InputError, match="must be an image, got a video of 17 frames"):
        pipeline.animate(clip, PROMPT, rights_attested=True)
    odd = Video(torch.randint(0, 256, (1, 90, 200, 3), dtype=torch.uint8), 16)
    with pytest.warns(InputAdjustedWarning, match="resized from 200x90 to 112x64"):
        result = pipeline.animate(odd, PROMPT, 1.0, rights_attested=True)
    assert tuple(result.frames.shape) == (17, 64, 112, 3)  # 16:9, the closest aspect


def test_extend_forward_keeps_the_video_and_adds_the_seconds(pipeline, clip):
    seen = []
    result = pipeline.extend(
        clip, PROMPT, 5.0, rights_attested=True, progress=lambda d, n: seen.append((d, n))
    )
    assert result.frames.shape[0] == 17 + 5 * 16
    assert torch.equal(result.frames[:17], clip.frames)
    # several windows, one step count over all of them, ending at the total announced
    assert _steps(seen) == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1] > 2


def test_pulling_to_a_known_frame_fixes_the_picture_and_fades_out():
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (10, 4, 4, 3), generator=generator, dtype=torch.uint8)
    known = torch.randint(0, 256, (4, 4, 3), generator=generator, dtype=torch.uint8)
    pulled = pull_to_known(frames, known, reach=3)
    assert pulled.dtype == torch.uint8 and torch.equal(pulled[0], known)
    assert torch.equal(pulled[4:], frames[4:])  # nothing from reach + 1 frames on
    # halfway, the frame moves half of the picture's error (before rounding and clipping)
    halfway = frames[2].float() + 0.5 * (known.float() - frames[0].float())
    assert torch.equal(pulled[2], halfway.round().clamp(0, 255).to(torch.uint8))
    backwards = pull_to_known(frames, known, at_end=True, reach=3)
    assert torch.equal(backwards[-1], known) and torch.equal(backwards[:-4], frames[:-4])


def test_extend_backward_ends_with_the_video(pipeline, clip):
    result = pipeline.extend(clip, PROMPT, 1.5, direction="backward", rights_attested=True)
    assert result.frames.shape[0] == 17 + 24
    assert torch.equal(result.frames[-17:], clip.frames)
    with pytest.raises(GenerationError, match="direction must be one of"):
        pipeline.extend(clip, PROMPT, 1.0, direction="sideways", rights_attested=True)


def test_extension_is_deterministic_for_a_seed(pipeline, clip):
    first = pipeline.extend(clip, PROMPT, 1.0, seed=2, rights_attested=True)
    again = pipeline.extend(clip, PROMPT, 1.0, seed=2, rights_attested=True)
    other = pipeline.extend(clip, PROMPT, 1.0, seed=3, rights_attested=True)
    assert torch.equal(first.frames, again.frames)
    assert not torch.equal(first.frames, other.frames)


def test_remix_at_strength_zero_is_the_vae_round_trip(pipeline, clip):
    result = pipeline.remix(clip, "A blue square.", 0.0, rights_attested=True)
    round_trip = pipeline.decode(pipeline.encode(clip.frames), _layout(clip))
    assert torch.equal(result.frames, round_trip)
    stronger = pipeline.remix(clip, "A blue square.", 1.0, rights_attested=True)
    assert not torch.equal(stronger.frames, round_trip)


@pytest.mark.parametrize("strength", [-0.1, 1.5, "half", True])
def test_remix_refuses_a_strength_outside_0_1(pipeline, clip, strength):
    with pytest.raises(GenerationError, match="strength must be a number from 0 to 1"):
        pipeline.remix(clip, PROMPT, strength, rights_attested=True)


def test_remix_of_a_long_video_goes_window_by_window(pipeline, clip):
    long = pipeline.extend(clip, PROMPT, 5.0, rights_attested=True).video  # 97 frames
    result = pipeline.remix(long, "A green star.", 0.5, rights_attested=True)
    assert tuple(result.frames.shape) == tuple(long.frames.shape)


def test_connect_spans_the_gap_with_both_ends(pipeline, clip):
    other = pipeline.generate("A blue square slides.", 1.0, aspect="1:1", seed=9).video
    result = pipeline.connect(clip, other, "", 1.0, rights_attested=True)
    assert result.frames.shape[0] == 4 * 4 + 2  # 1 s: 4 latent groups, plus both ends
    # both ends are the real frames, not the model's pictures of them
    assert torch.equal(result.frames[0], clip.frames[-1])
    assert torch.equal(result.frames[-1], other.frames[0])
    longer = pipeline.connect(clip, other, "", 6.0, rights_attested=True)  # > one window
    assert longer.frames.shape[0] == 4 * 24 + 2
    assert torch.equal(longer.frames[0], clip.frames[-1])
    assert torch.equal(longer.frames[-1], other.frames[0])


def test_loop_from_a_prompt_and_from_a_video(pipeline, clip):
    made = pipeline.loop(PROMPT, 3.0, aspect="1:1")
    assert made.frames.shape[0] == 48
    looped = pipeline.loop(video=clip, rights_attested=True)  # its 17 frames + 1 s
    assert looped.frames.shape[0] == 17 + 16
    assert torch.equal(looped.frames[:17], clip.frames)
    cut = pipeline.loop(video=clip, seconds=1.5, transition=0.5, rights_attested=True)
    assert cut.frames.shape[0] == 24 and torch.equal(cut.frames[:16], clip.frames[:16])
    with pytest.raises(GenerationError, match="needs its length"):
        pipeline.loop(PROMPT)


def test_blend_all_of_a_is_a_remix_of_a(pipeline, clip):
    other = pipeline.generate("A blue square slides.", 1.0, aspect="1:1", seed=9).video
    only_a = pipeline.blend(clip, other, "", [[0, 0], [1, 0]], 0.0, rights_attested=True)
    remixed = pipeline.remix(clip, "", 0.0, rights_attested=True)
    assert torch.equal(only_a.frames, remixed.frames)
    mixed = pipeline.blend(clip, other, PROMPT, "linear", 0.3, rights_attested=True)
    assert tuple(mixed.frames.shape) == tuple(clip.frames.shape)
    assert mixed.record["arguments"]["curve"] == "linear"


def test_storyboard_places_a_video_card_exactly_at_its_start(pipeline, clip, tmp_path):
    write_video(tmp_path / "middle.mp4", clip)
    middle = read_video(tmp_path / "middle.mp4").frames  # as decoded from the file
    board = Storyboard.from_dict(
        {
            "seconds": 5,
            "cards": [
                {"start": 0, "prompt": PROMPT},
                {"start": 2, "video": "middle.mp4", "prompt": "It keeps going."},
                {"start": 4, "prompt": "A blue square slides."},
            ],
        },
        folder=tmp_path,
    )
    seen = []
    result = pipeline.storyboard(
        board, rights_attested=True, aspect="1:1", progress=lambda d, n: seen.append((d, n))
    )
    assert result.frames.shape[0] == 80
    assert torch.equal(result.frames[32 : 32 + 17], middle)
    assert seen[-1][0] == seen[-1][1]


@pytest.mark.parametrize(
    ("cards", "message"),
    [
        ([{"start": 1, "prompt": "x"}], "card 1 must start at 0"),
        ([{"start": 0, "prompt": "x"}, {"start": 0, "prompt": "y"}], "cards overlap"),
        ([{"start": 0, "prompt": "x"}, {"start": 9, "prompt": "y"}], "outside the 4 s"),
        ([{"start": 0}], "card 1 has no prompt, image or video"),
        ([{"start": 0, "image": "a.png", "video": "b.mp4"}], "both an image and a video"),
        ([{"start": 0, "prompt": "x", "colour": "red"}], "unknown keys"),
    ],
)
def test_bad_storyboards_are_refused_with_the_card_named(cards, message):
    with pytest.raises(StoryboardError, match=message):
        Storyboard.from_dict({"seconds": 4, "cards": cards})


def test_a_video_card_that_runs_into_the_next_card_is_refused(pipeline, clip, tmp_path):
    write_video(tmp_path / "long.mp4", clip)  # 17 frames: past a card 0.5 s later
    board = {
        "seconds": 3,
        "cards": [{"start": 0, "video": "long.mp4"}, {"start": 0.5, "prompt": PROMPT}],
    }
    with pytest.raises(StoryboardError, match=r"card 1.s video .* runs past the next card"):
        pipeline.storyboard(Storyboard.from_dict(board, tmp_path), rights_attested=True)


def test_storyboard_reads_yaml_with_paths_relative_to_the_file(tmp_path):
    (tmp_path / "board.yaml").write_text(
        "seconds: 3\ncards:\n  - {start: 0, prompt: A red circle.}\n  - {start: 1, image: a.png}\n"
    )
    board = Storyboard.from_file(tmp_path / "board.yaml")
    assert board.cards[1].image == "a.png"
    assert board.to_dict()["cards"][1]["image"] == str(tmp_path.resolve() / "a.png")


def test_saved_result_reproduces_identically(pipeline, clip, tmp_path):
    source = tmp_path / "source.mp4"
    write_video(source, clip)
    result = pipeline.extend(source, PROMPT, 1.0, rights_attested=True, seed=7)
    save(result, tmp_path / "out.mp4")
    record = read_record(record_path(tmp_path / "out.mp4"))
    assert record["inputs"][0]["path"] == str(source.resolve())
    again = reproduce(record, pipeline)
    assert torch.equal(again.frames, result.frames)
    assert same_frames(record, again.record)
    assert again.record["id"] == record["id"]
    write_video(source, Video(clip.frames.flip(0), 16))  # the input changes
    with pytest.raises(RecordError, match="has changed since the run"):
        reproduce(record, pipeline)


def test_cli_tools_write_video_and_record(folder, clip, tmp_path, capsys):
    source = tmp_path / "in.mp4"
    write_video(source, clip)
    common = ["--model", str(folder), "--steps", "1"]
    out = tmp_path / "ext.mp4"
    argv = ["extend", str(source), "--prompt", PROMPT, "--seconds", "1", "--out", str(out)]
    assert main([*argv, *common, "--i-own-the-rights"]) == 0, capsys.readouterr().err
    assert read_video(out).frames.shape[0] == 17 + 16
    record = json.loads(record_path(out).read_text())
    assert record["tool"] == "extend" and record["arguments"]["steps"] == 1
    # the same command without the attestation: refused, nothing written
    refused = tmp_path / "refused.mp4"
    argv = ["remix", str(source), "--prompt", PROMPT, "--out", str(refused), *common]
    assert main(argv) == 2
    assert "own the rights" in capsys.readouterr().err and not refused.exists()
    # reproduce from the sidecar: the same frames
    again = tmp_path / "again.mp4"
    assert main(["reproduce", str(record_path(out)), "--out", str(again)]) == 0
    assert "identical frames" in capsys.readouterr().err
    reproduced = json.loads(record_path(again).read_text())
    assert reproduced["output"]["frames_sha256"] == record["output"]["frames_sha256"]
    assert read_video(again).frames.shape == read_video(out).frames.shape


def test_cli_loop_and_blend_options(folder, clip, tmp_path, capsys):
    common = ["--model", str(folder), "--steps", "1", "--aspect", "1:1"]
    out = tmp_path / "loop.gif"
    assert main(["loop", "--prompt", PROMPT, "--seconds", "2", "--out", str(out), *common]) == 0
    assert read_video(out).frames.shape[0] == 32
    source = tmp_path / "a.mp4"
    write_video(source, clip)
    argv = ["blend", str(source), str(source), "--curve", "[[0, 1], [1]]", "--out", "x.mp4"]
    assert main([*argv, *common, "--i-own-the-rights"]) == 2
    assert "each curve point is [time, weight]" in capsys.readouterr().err


def _layout(video: Video):
    from kinetoscope.models.vae import FrameLayout

    return FrameLayout(video.num_frames, video.height, video.width)


def test_saved_videos_are_watermarked_and_signed(pipeline, clip, tmp_path):
    from kinetoscope.provenance.verify import verify_file

    source = tmp_path / "source.mp4"
    write_video(source, clip)
    # 128 pixels: the mark's pattern repeats every 128; the tiny model paints pure noise
    with pytest.warns(InputAdjustedWarning, match="resized from 64x64 to 128x128"):
        result = pipeline.remix(source, "A blue square.", 0.5, size=128, rights_attested=True)
    report = verify_file(save(result, tmp_path / "remix.mp4")).to_dict()
    assert report["manifest"] == "valid" and report["trusted"] is True
    assert report["watermark"]["detected"] is True
    assert int(report["watermark"]["payload"], 16) == payload_for(result.record["id"])
    summary = json.dumps(report["summary"])
    assert "source.mp4" in summary and result.record["inputs"][0]["sha256"] in summary
    assert result.record["model"]["sha256"] in summary
    # a webm carries its manifest beside it
    webm = save(pipeline.generate(PROMPT, 1.0, aspect="1:1", size=128), tmp_path / "clip.webm")
    assert (tmp_path / "clip.webm.c2pa").is_file()
    assert verify_file(webm).to_dict()["manifest"] == "valid"


def test_redacted_prompt_stays_out_of_the_file(pipeline, tmp_path):
    result = pipeline.generate("A secret magenta heptagon.", 1.0, aspect="1:1")
    path = save(result, tmp_path / "clip.mp4", redact_prompt=True)
    assert b"secret magenta" not in path.read_bytes()
    assert "secret magenta" in record_path(path).read_text()  # the user's own record keeps it


def test_refused_prompts_stop_before_any_compute(pipeline, folder, tmp_path, capsys):
    from kinetoscope.safety.policy import PolicyRefusal

    calls = []
    hook = pipeline.transformer.register_forward_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(PolicyRefusal, match="graphic violence"):
            pipeline.generate("A man is tortured and mutilated, blood everywhere.", 1.0)
        board = {
            "seconds": 2,
            "cards": [
                {"start": 0, "prompt": PROMPT},
                {"start": 1, "prompt": "a deepfake of Barack Obama"},
            ],
        }
        with pytest.raises(PolicyRefusal, match="real"):
            pipeline.storyboard(board)
    finally:
        hook.remove()
    assert calls == []
    # negative prompts say what to avoid: they are not checked
    pipeline.generate(PROMPT, 1.0, aspect="1:1", negative_prompt="blood and gore")
    out = tmp_path / "refused.mp4"
    argv = ["generate", "a deepfake of Taylor Swift", "--model", str(folder), "--out", str(out)]
    assert main(argv) == 2
    assert "real" in capsys.readouterr().err.lower() and not out.exists()


def test_cli_output_verifies(folder, tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    argv = ["generate", PROMPT, "--model", str(folder), "--out", str(out), "--seconds", "1"]
    assert main([*argv, "--size", "128", "--aspect", "1:1", "--steps", "1"]) == 0
    capsys.readouterr()
    assert main(["verify", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["manifest"] == "valid" and report["trusted"] is True
    assert report["watermark"]["detected"] is True
    record = json.loads(record_path(out).read_text())
    assert int(report["watermark"]["payload"], 16) == payload_for(record["id"])
    data = bytearray(out.read_bytes())  # one byte of the media data changed: invalid
    middle = data.index(b"mdat") + 200
    data[middle] ^= 0xFF
    out.write_bytes(bytes(data))
    assert main(["verify", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["manifest"] == "invalid"
