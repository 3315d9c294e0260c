"""Published architectures of the reference backbones, for documentation and `meta`-device checks.

Values are those of the diffusers-format releases' `transformer/config.json` and `vae/config.json`.
A run with the weights on disk reads them from there (`transformer.pretrained`), never from here.
"""

WAN2_2_TI2V_5B = dict(
    patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48,
    text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
)
WAN2_2_VAE = dict(channels=48, spatial_factor=16, temporal_factor=4)

WAN2_1_T2V_1_3B = dict(
    patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
    text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
)
WAN2_1_VAE = dict(channels=16, spatial_factor=8, temporal_factor=4)

UMT5_XXL_DIM = 4096
