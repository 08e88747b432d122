{
 "patcher": {
  "fileversion": 1,
  "appversion": {
   "major": 8,
   "minor": 5,
   "revision": 0,
   "architecture": "x64",
   "modernui": 1
  },
  "classnamespace": "box",
  "rect": [
   100,
   100,
   760,
   480
  ],
  "boxes": [
   {
    "box": {
     "id": "c1",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20,
      10,
      620,
      22
     ],
     "text": "steerbridge OSC remote: run `steerbridge serve --preset presets/demo.toml --output wav:out/loops` (OSC on 127.0.0.1:9000). Click 'subscribe' once to get state, progress and loop-ready feedback on port 9001."
    }
   },
   {
    "box": {
     "id": "send",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      20,
      420,
      160,
      22
     ],
     "text": "udpsend 127.0.0.1 9000"
    }
   },
   {
    "box": {
     "id": "recv",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      420,
      60,
      120,
      22
     ],
     "text": "udpreceive 9001"
    }
   },
   {
    "box": {
     "id": "k0",
     "maxclass": "live.dial",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      20,
      60,
      44,
      22
     ],
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "mood",
       "parameter_shortname": "mood",
       "parameter_type": 0,
       "parameter_mmax": 1.0,
       "parameter_initial": [
        0.5
       ],
       "parameter_initial_enable": 1,
       "parameter_unitstyle": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "p0",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      20,
      130,
      125,
      22
     ],
     "text": "prepend /steer/knob/mood"
    }
   },
   {
    "box": {
     "id": "k1",
     "maxclass": "live.dial",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      150,
      60,
      44,
      22
     ],
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "tempo",
       "parameter_shortname": "tempo",
       "parameter_type": 0,
       "parameter_mmax": 1.0,
       "parameter_initial": [
        0.5
       ],
       "parameter_initial_enable": 1,
       "parameter_unitstyle": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "p1",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      150,
      130,
      125,
      22
     ],
     "text": "prepend /steer/knob/tempo"
    }
   },
   {
    "box": {
     "id": "k2",
     "maxclass": "live.dial",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      280,
      60,
      44,
      22
     ],
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "brightness",
       "parameter_shortname": "brightness",
       "parameter_type": 0,
       "parameter_mmax": 1.0,
       "parameter_initial": [
        0.5
       ],
       "parameter_initial_enable": 1,
       "parameter_unitstyle": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "p2",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      280,
      130,
      125,
      22
     ],
     "text": "prepend /steer/knob/brightness"
    }
   },
   {
    "box": {
     "id": "play",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      20,
      200,
      80,
      22
     ],
     "text": "/steer/play"
    }
   },
   {
    "box": {
     "id": "stop",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      110,
      200,
      80,
      22
     ],
     "text": "/steer/stop"
    }
   },
   {
    "box": {
     "id": "sub",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      200,
      200,
      140,
      22
     ],
     "text": "/steer/subscribe 9001"
    }
   },
   {
    "box": {
     "id": "seed",
     "maxclass": "number",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      20,
      250,
      60,
      22
     ]
    }
   },
   {
    "box": {
     "id": "pseed",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      20,
      280,
      130,
      22
     ],
     "text": "prepend /steer/seed"
    }
   },
   {
    "box": {
     "id": "txt",
     "maxclass": "textedit",
     "numinlets": 1,
     "numoutlets": 4,
     "patching_rect": [
      170,
      250,
      200,
      22
     ]
    }
   },
   {
    "box": {
     "id": "ptxt",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      170,
      300,
      140,
      22
     ],
     "text": "prepend /steer/prompt"
    }
   },
   {
    "box": {
     "id": "route",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 4,
     "patching_rect": [
      420,
      100,
      280,
      22
     ],
     "text": "route /steer/loop /steer/progress /steer/error"
    }
   },
   {
    "box": {
     "id": "unpack",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      420,
      140,
      80,
      22
     ],
     "text": "unpack s s"
    }
   },
   {
    "box": {
     "id": "replace",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "patching_rect": [
      420,
      180,
      110,
      22
     ],
     "text": "prepend replace"
    }
   },
   {
    "box": {
     "id": "buf",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "patching_rect": [
      420,
      220,
      140,
      22
     ],
     "text": "buffer~ steerbridge"
    }
   },
   {
    "box": {
     "id": "groove",
     "maxclass": "newobj",
     "numinlets": 3,
     "numoutlets": 2,
     "patching_rect": [
      420,
      260,
      140,
      22
     ],
     "text": "groove~ steerbridge"
    }
   },
   {
    "box": {
     "id": "loop1",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "patching_rect": [
      580,
      230,
      70,
      22
     ],
     "text": "loop 1, 0"
    }
   },
   {
    "box": {
     "id": "dac",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 0,
     "patching_rect": [
      420,
      300,
      45,
      22
     ],
     "text": "dac~"
    }
   },
   {
    "box": {
     "id": "prog",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      560,
      140,
      170,
      22
     ],
     "text": "print steerbridge-progress"
    }
   },
   {
    "box": {
     "id": "err",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "patching_rect": [
      560,
      170,
      160,
      22
     ],
     "text": "print steerbridge-error"
    }
   }
  ],
  "lines": [
   {
    "patchline": {
     "source": [
      "k0",
      0
     ],
     "destination": [
      "p0",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "p0",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "k1",
      0
     ],
     "destination": [
      "p1",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "p1",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "k2",
      0
     ],
     "destination": [
      "p2",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "p2",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "play",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "stop",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "sub",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "seed",
      0
     ],
     "destination": [
      "pseed",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "pseed",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "txt",
      0
     ],
     "destination": [
      "ptxt",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "ptxt",
      0
     ],
     "destination": [
      "send",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "recv",
      0
     ],
     "destination": [
      "route",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "route",
      0
     ],
     "destination": [
      "unpack",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "unpack",
      0
     ],
     "destination": [
      "replace",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "replace",
      0
     ],
     "destination": [
      "buf",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "buf",
      0
     ],
     "destination": [
      "loop1",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "loop1",
      0
     ],
     "destination": [
      "groove",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "groove",
      0
     ],
     "destination": [
      "dac",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "groove",
      0
     ],
     "destination": [
      "dac",
      1
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "route",
      1
     ],
     "destination": [
      "prog",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "route",
      2
     ],
     "destination": [
      "err",
      0
     ]
    }
   }
  ],
  "description": "steerbridge OSC remote",
  "tags": "steerbridge osc"
 }
}