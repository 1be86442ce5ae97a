"""WidowX driver (interbotix, dynamixel, mock backends), camera, teleop, episode recorder, URDF and RViz config."""
