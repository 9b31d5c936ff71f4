"""synth: seed files in, generated instruction data out, through any teacher."""
